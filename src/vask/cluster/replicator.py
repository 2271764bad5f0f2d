"""One node of a cluster: the hub's transitions go to the shared store, envelopes go to the other nodes.

The hub (vask.core.hub) is the same as on a single node; attached to it, the replicator receives its
transitions (vask.core.replica) and owns everything cluster-wide: which documents are dirty, which presence
joins wait for the member list, the envelopes waiting for the broker. A background worker writes this node's
local truth into the shared store and reads the transitions off each atomic update, so each transition is
seen by exactly one node, which announces it on the broker and tells the observer (webhooks) once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from vask import tasks
from vask.apps.base import App
from vask.broker.base import Broker, BrokerUnavailable
from vask.cluster import apply, janitor, worker
from vask.cluster import documents as docs
from vask.cluster import envelopes as env
from vask.cluster.documents import CacheEntry
from vask.cluster.node import AccountCounter
from vask.cluster.stats import ClusterStats
from vask.cluster.store import SharedStore, StoreUnavailable
from vask.cluster.sync import Dirty, Kind, channel_key, user_key
from vask.cluster.view import ClusterView, needs_view, view_for
from vask.core.connection import Connection
from vask.core.hub import Hub
from vask.core.state import AppState
from vask.protocol import constants as c
from vask.protocol import frames
from vask.protocol.channels import channel_type
from vask.protocol.rest import RestCall

log = logging.getLogger("vask.cluster")

AppLookup = Callable[[str], Awaitable[App | None]]
MAX_OUTGOING = 100_000  # envelopes queued while the broker is away; the oldest go first beyond it


class Replicator:
    def __init__(self, hub: Hub, node_id: str, broker: Broker, store: SharedStore, apps: AppLookup,
                 node_timeout: float = 30.0, region: str = "", vacate_delay: float = 3.0,
                 wall: Callable[[], float] = time.time) -> None:
        self.hub = hub
        hub.replica = self
        self.clock: Callable[[], float] = hub.clock  # monotonic, as the loop's timers
        self.wall = wall  # seconds since the epoch, for what other nodes read (markers, cache expiry)
        self.node_id = node_id
        self.region = region
        self.node_timeout = node_timeout
        self.vacate_delay = vacate_delay
        self.broker = broker
        self.store = store
        self.lookup = apps
        self.epoch = ""
        self.quiet = False
        self.settle_until = 0.0
        self.outgoing: deque[bytes] = deque()
        self.outgoing_ready = asyncio.Event()
        self.dirty: dict[str, Dirty] = {}  # key → what to rewrite there
        self.dirty_ready = asyncio.Event()
        self.pending: dict[tuple[str, str], list[Connection]] = {}
        self.registered: set[str] = set()
        self.synced_members: dict[str, set[str]] = {}
        self.app_totals: dict[str, int] = {}
        self.account_totals: dict[str, int] = {}
        self.account_counter: AccountCounter | None = None  # ClusterUsageCounters, when metering is on
        self.store_healthy = True
        self.background: set[asyncio.Task[Any]] = set()
        self.loops: list[asyncio.Task[Any]] = []
        self.stats = ClusterStats()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        await self.broker.start(self.receive, self.resync)
        self.loops = [tasks.spawn(self._send_loop(), "cluster-send", self.background),
                      tasks.spawn(self._sync_loop(), "cluster-sync", self.background),
                      tasks.spawn(janitor.heartbeat_loop(self), "cluster-heartbeat", self.background)]

    async def stop(self) -> None:
        """Flush what is queued (the departures of closed connections), then stop the background tasks."""
        for _ in range(100):
            if not self.dirty and not self.outgoing:
                break
            await asyncio.sleep(0.02)
        # redis-py can swallow a cancellation that lands while it opens a connection (the task then carries on
        # looping): cancel again until every task is done instead of awaiting one for ever.
        pending = set(self.loops)  # held webhooks (vask.cluster.debounce) may still go out meanwhile
        for _ in range(25):
            if not pending:
                break
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.2)
        with contextlib.suppress(StoreUnavailable):  # say goodbye so peers need not wait for the timeout
            await self.store.delete_expiring("nodes", self.node_id)
        await self.broker.close()
        await self.store.close()

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        tasks.spawn(work, name, self.background)

    async def app_by_id(self, app_id: str) -> App | None:
        state = self.hub.apps.get(app_id)
        return state.app if state is not None else await self.lookup(app_id)

    @property
    def healthy(self) -> bool:
        healthy = self.stats.healthy = self.broker.healthy and self.store_healthy
        return healthy

    async def resync(self) -> None:
        """After the broker or store came back: re-publish this node's whole local state (absolute values)."""
        # The store may have lost its data and this node may learn it (check_epoch) only after reconciling a
        # presence channel: until the other nodes had time to re-publish, a missing member is not gone.
        self.settle_until = max(self.settle_until, self.clock() + max(self.node_timeout / 6, 0.2) + 2.0)
        self.registered.clear()
        for state in list(self.hub.apps.values()):
            app_id = state.app.id
            self.mark(Dirty(Kind.CONNECTIONS, app_id))
            for name, channel in state.channels.items():
                self.mark(Dirty(Kind.CHANNEL, app_id, name))
                if channel.type.is_presence:
                    self.mark(Dirty(Kind.PRESENCE, app_id, name))
            for user_id in state.users:
                self.mark(Dirty(Kind.USER, app_id, user_id))
        for account in list(self.account_totals):
            self.mark(Dirty(Kind.ACCOUNT, account))

    # -- the HTTP API ------------------------------------------------------------------------

    def needs_view(self, call: RestCall) -> bool:
        """Whether the call's answer is cluster-wide (channel info), read from the shared store first."""
        return needs_view(call)

    async def view_for(self, call: RestCall) -> ClusterView:
        return await view_for(self.store, self.hub, call, self.wall)

    # -- envelopes ---------------------------------------------------------------------------

    def announce(self, app_id: str, body: env.Body) -> None:
        if len(self.outgoing) >= MAX_OUTGOING:  # bounded: a broker outage must not grow memory for ever
            self.outgoing.popleft()
            self.stats.envelopes_dropped += 1  # (its receivers count the gap it leaves, too)
        envelope = env.Envelope(self.node_id, app_id, body, self.stats.boot, self.stats.next_sequence())
        self.outgoing.append(env.encode(envelope))
        self.outgoing_ready.set()

    async def _send_loop(self) -> None:
        while True:
            await self.outgoing_ready.wait()
            self.outgoing_ready.clear()
            while self.outgoing:
                try:
                    await self.broker.publish(self.outgoing[0])
                except BrokerUnavailable:
                    await asyncio.sleep(0.2)
                    continue
                self.outgoing.popleft()
                self.stats.envelopes_sent += 1

    def receive(self, payload: bytes) -> None:
        envelope = env.decode(payload)
        if envelope is None or envelope.origin == self.node_id:
            return  # not ours, or already handled locally when it was sent
        self.stats.received(envelope)
        state = self.hub.apps.get(envelope.app_id)
        if state is not None:  # else no connection of that app here
            apply.apply(self, state, envelope)

    # -- the hub's transitions (vask.core.replica.Replica) -------------------------------------

    def mark(self, dirty: Dirty) -> None:
        self.dirty[dirty.key()] = dirty
        self.dirty_ready.set()

    def connections_changed(self, app_id: str) -> None:
        self.mark(Dirty(Kind.CONNECTIONS, app_id))

    def other_connections(self, app_id: str) -> int:
        return self.app_totals.get(app_id, 0)

    def channel_changed(self, app_id: str, channel: str) -> None:
        self.mark(Dirty(Kind.CHANNEL, app_id, channel))

    def presence_changed(self, app_id: str, channel: str, joined: Connection | None = None) -> None:
        if joined is not None:
            self.pending.setdefault((app_id, channel), []).append(joined)
        self.mark(Dirty(Kind.PRESENCE, app_id, channel))

    def user_changed(self, app_id: str, user_id: str) -> None:
        self.mark(Dirty(Kind.USER, app_id, user_id))

    def published(self, app: App, channel: str, event: str, data: str, exclude_socket_id: str | None) -> None:
        if channel_type(channel).cache:
            event_id = secrets.token_hex(8)
            self._store_cache(app.id, channel, event, data, event_id)
            self.announce(app.id, env.Publish(channel, event, data, exclude_socket_id, event_id))
        else:
            self.announce(app.id, env.Publish(channel, event, data, exclude_socket_id))

    def client_event(self, app_id: str, channel: str, event: str, data: Any, user_id: str | None,
                     socket_id: str) -> None:
        self.announce(app_id, env.ClientEvent(channel, event, data, user_id, socket_id))

    def terminated(self, app_id: str, user_id: str) -> None:
        self.announce(app_id, env.Terminate(user_id))

    def watchlist_status(self, state: AppState, conn: Connection) -> None:
        self.spawn(self._watchlist_status(state, conn), "watchlist-status")

    async def _watchlist_status(self, state: AppState, conn: Connection) -> None:
        online: set[str] = set()
        with contextlib.suppress(StoreUnavailable):
            docs = await self.store.get_many([user_key(state.app.id, u) for u in conn.watchlist])
            online = {u for u, raw in zip(conn.watchlist, docs, strict=True) if raw is not None}
        online |= {u for u in conn.watchlist if u in state.users}
        frame = frames.watchlist_status(conn.watchlist, online)
        if not conn.closing and frame is not None:
            conn.send(frame)

    def cache_missed(self, state: AppState, conn: Connection, channel: str) -> None:
        self.spawn(self._replay_shared_cache(state, conn, channel), "cache-replay")

    async def _replay_shared_cache(self, state: AppState, conn: Connection, name: str) -> None:
        # This node may have started after the event was published: the cache lives in the store too.
        cached = None
        key = channel_key(state.app.id, name)
        with contextlib.suppress(StoreUnavailable):
            cached = docs.load(CacheEntry, await self.store.get_expiring("cache", key), key)
        sub = conn.subscriptions.get(name)
        if conn.closing or sub is None:
            return  # gone, or unsubscribed meanwhile
        if cached is None or cached.expires <= self.wall():
            if sub.cache_id is None:  # unless an event arrived meanwhile: then there is no miss to report
                conn.send(frames.cache_miss(name))
                self.hub.observer.cache_miss(state.app, name)
        elif sub.cache_id != cached.event_id:
            sub.cache_id = cached.event_id
            conn.send(frames.encode(cached.event, cached.data, name))

    def _store_cache(self, app_id: str, channel: str, event: str, data: str, event_id: str) -> None:
        async def put() -> None:
            with contextlib.suppress(StoreUnavailable):
                entry = CacheEntry(event, data, self.wall() + c.CACHE_TTL, event_id)
                await self.store.put_expiring("cache", channel_key(app_id, channel), docs.dump(entry))
        self.spawn(put(), "cache-store")

    # -- the worker --------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        while True:
            await self.dirty_ready.wait()
            self.dirty_ready.clear()
            while self.dirty:
                batch = dict(list(self.dirty.items())[:64])
                for key in batch:
                    del self.dirty[key]
                try:
                    await worker.sync_batch(self, batch)
                    self.store_healthy = True
                    if not self.dirty:
                        self.quiet = False
                except StoreUnavailable as exc:
                    if self.store_healthy:
                        log.warning("shared store unavailable: %s", exc)
                    self.store_healthy = False
                    for key, item in batch.items():
                        self.dirty.setdefault(key, item)
                    await asyncio.sleep(0.5)
