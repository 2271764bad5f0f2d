"""A hub that is one node of a cluster: local fan-out as before, plus the broker and the shared state.

Local state still answers everything about this node's own connections. What is cluster-wide — occupancy,
presence members, online users, connection counts — is kept in the shared store by a background worker that
writes this node's local truth and reads the transitions off each atomic update, so each transition is seen
by exactly one node, which announces it on the broker and tells the observer (webhooks) once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from vask.apps.base import App
from vask.broker.base import Broker, BrokerUnavailable
from vask.cluster import envelopes as env
from vask.cluster import sync
from vask.cluster.stats import ClusterStats
from vask.cluster.store import SharedStore, StoreUnavailable, decode, total, update
from vask.cluster.store import set_node_count as set_count
from vask.core.connection import Connection
from vask.core.hub import AppState, Cached, Channel, Hub, send_watchlist_status
from vask.protocol import constants as c
from vask.protocol import frames
from vask.protocol.channels import channel_type

log = logging.getLogger("vask.cluster")

AppLookup = Callable[[str], Awaitable[App | None]]


class ClusterHub(Hub):
    def __init__(self, clock: Any, node_id: str, broker: Broker, store: SharedStore, apps: AppLookup,
                 node_timeout: float = 30.0, region: str = "", vacate_delay: float = 3.0) -> None:
        super().__init__(clock)
        self.vacate_delay = vacate_delay  # webhook delay, applied cluster-wide here (vask.cluster.debounce)
        self.background: set[asyncio.Task[None]] = set()
        self.node_id = node_id
        self.region = region
        self.node_timeout = node_timeout
        self.epoch = ""
        self.quiet = False  # True while re-publishing state the store lost: those transitions are old news
        self.settle_until = 0.0  # monotonic time until which other nodes may still be re-publishing
        self.broker = broker
        self.store = store
        self.lookup = apps
        self.outgoing: deque[bytes] = deque()
        self.outgoing_ready = asyncio.Event()
        self.dirty: dict[str, tuple[str, str, str]] = {}  # key → (kind, app id, name)
        self.dirty_ready = asyncio.Event()
        self.pending: dict[tuple[str, str], list[Connection]] = {}  # presence joins awaiting the cluster
        self.registered: set[str] = set()
        self.synced_members: dict[str, set[str]] = {}  # presence key → the users this node last wrote there
        self.app_totals: dict[str, int] = {}  # other nodes' connections per app, refreshed by the worker
        self.account_totals: dict[str, int] = {}  # other nodes' connections per account (billing quotas)
        self.account_counter: Any = None  # ClusterUsageCounters, when metering is on
        self.store_healthy = True
        self.tasks: list[asyncio.Task[None]] = []
        self.stats = ClusterStats()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.store.start()
        await self.broker.start(self.receive, self.resync)
        from vask.cluster.janitor import heartbeat_loop

        self.tasks = [asyncio.create_task(self._send_loop()), asyncio.create_task(self._sync_loop()),
                      asyncio.create_task(heartbeat_loop(self, self.node_timeout))]

    async def stop(self) -> None:
        """Flush what is queued (the departures of closed connections), then stop the background tasks."""
        for _ in range(100):
            if not self.dirty and not self.outgoing:
                break
            await asyncio.sleep(0.02)
        # redis-py can swallow a cancellation that lands while it opens a connection (the task then carries on
        # looping): cancel again until every task is done instead of awaiting one for ever.
        pending = set(self.tasks)
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

    def spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.background.add(task)  # keep a reference: the loop holds tasks only weakly
        task.add_done_callback(self.background.discard)

    async def app_by_id(self, app_id: str) -> App | None:
        state = self.apps.get(app_id)
        return state.app if state is not None else await self.lookup(app_id)

    @staticmethod
    def decode(raw: bytes | None) -> dict[str, Any] | None:
        return decode(raw)

    @property
    def healthy(self) -> bool:
        healthy = self.stats.healthy = self.broker.healthy and self.store_healthy
        return healthy

    async def resync(self) -> None:
        """After the broker or store came back: re-publish this node's whole local state (absolute values)."""
        # The store may have lost its data and this node may learn it (check_epoch) only after reconciling a
        # presence channel: until the other nodes had time to re-publish, a missing member is not gone.
        self.settle_until = max(self.settle_until, time.monotonic() + max(self.node_timeout / 6, 0.2) + 2.0)
        self.registered.clear()
        for state in list(self.apps.values()):
            self._mark("cn", state.app.id, "")
            for name, channel in state.channels.items():
                self._mark("ch", state.app.id, name)
                if channel.type.is_presence:
                    self._mark("pr", state.app.id, name)
            for user_id in state.users:
                self._mark("us", state.app.id, user_id)
        for account in list(self.account_totals):
            self._mark("ac", account, "")

    # -- outgoing envelopes ------------------------------------------------------------------

    def announce(self, kind: str, app_id: str, **fields: Any) -> None:
        if len(self.outgoing) > 100_000:  # bounded: a broker outage must not grow memory for ever
            self.outgoing.popleft()
            self.stats.envelopes_dropped += 1  # (its receivers count the gap it leaves, too)
        self.outgoing.append(env.encode(kind, self.node_id, app_id, b=self.stats.boot,
                                        q=self.stats.next_sequence(), **fields))
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

    # -- publishing --------------------------------------------------------------------------

    def publish(self, app: App, channel: str, event: str, data: str,
                exclude_socket_id: str | None = None) -> None:
        super().publish(app, channel, event, data, exclude_socket_id)
        if channel_type(channel).cache:
            event_id = secrets.token_hex(8)
            self._store_cache(app.id, channel, event, data, event_id)
            self.announce(env.PUBLISH, app.id, c=channel, e=event, d=data, x=exclude_socket_id, i=event_id)
        else:
            self.announce(env.PUBLISH, app.id, c=channel, e=event, d=data, x=exclude_socket_id)

    def client_event(self, conn: Connection, channel: Channel, event: str, data: Any,
                     user_id: str | None) -> None:
        super().client_event(conn, channel, event, data, user_id)
        self.announce(env.CLIENT, conn.app.id, c=channel.name, e=event, d=data, u=user_id, x=conn.socket_id)

    def terminate_user(self, app_id: str, user_id: str) -> int:
        self.announce(env.TERMINATE, app_id, u=user_id)
        return super().terminate_user(app_id, user_id)

    def receive(self, payload: bytes) -> None:
        message = env.decode(payload)
        if message is None or message["o"] == self.node_id:
            return  # not ours, or already handled locally when it was sent
        self.stats.received(message)
        state = self.apps.get(message["a"])
        if state is None:
            return  # no connection of that app here
        try:
            self._apply(state, message)
        except (KeyError, TypeError, ValueError):
            log.warning("malformed %s envelope from node %s", message.get("k"), message.get("o"))

    def _apply(self, state: AppState, m: dict[str, Any]) -> None:
        kind = m["k"]
        if kind == env.PUBLISH:
            if m.get("i"):
                delivered = self._deliver_cached(state, m["c"], m["e"], m["d"], m.get("x"), str(m["i"]))
            else:
                delivered = self.deliver(state.app, m["c"], m["e"], m["d"], m.get("x"))
            self.observer.delivered(state.app, m["c"], delivered)
        elif kind == env.CLIENT:
            channel = state.channels.get(m["c"])
            if channel is not None:
                frame = frames.ws_frame(frames.encode(m["e"], m["d"], m["c"], m.get("u")))
                self.observer.delivered(state.app, m["c"], self.fan_out(channel.subscribers, frame, m.get("x")))
        elif kind in (env.MEMBER_ADDED, env.MEMBER_REMOVED):
            self._member_frames(state, m["c"], m["u"], m.get("i"), kind == env.MEMBER_ADDED)
        elif kind == env.COUNT:
            self._count_frames(state, m["c"], int(m["n"]), int(m.get("s", 0)))
        elif kind == env.WATCH:
            self._notify_watchers(state, m["u"], "online" if m["on"] else "offline")
        elif kind == env.TERMINATE:
            Hub.terminate_user(self, state.app.id, m["u"])

    # -- local transitions become dirty keys -------------------------------------------------

    def _mark(self, kind: str, app_id: str, name: str) -> None:
        if kind == "cn":
            key = sync.connections_key(app_id)
        elif kind == "ac":
            key = sync.account_key(app_id)  # app_id holds the account id here
        else:
            key = {"ch": sync.channel_key, "pr": sync.presence_key, "us": sync.user_key}[kind](app_id, name)
        self.dirty[key] = (kind, app_id, name)
        self.dirty_ready.set()

    def add(self, conn: Connection) -> None:
        super().add(conn)
        self._mark("cn", conn.app.id, "")

    def remove(self, conn: Connection) -> None:
        known = conn.app.id in self.apps and conn in self.apps[conn.app.id].connections
        super().remove(conn)
        if known:
            self._mark("cn", conn.app.id, "")

    def app_connections(self, app_id: str) -> int:
        """Cluster-wide: other nodes' counts from the last sync plus this node's live count."""
        return self.app_totals.get(app_id, 0) + super().app_connections(app_id)

    def _after_subscribe(self, state: AppState, conn: Connection, channel: Channel, occupied: bool,
                         new_member: bool, user_id: str | None) -> None:
        name = channel.name
        if channel.type.is_presence:
            conn.subscriptions[name].ready = False  # succeeded once the cluster's member list is known
            self.pending.setdefault((state.app.id, name), []).append(conn)
            self._mark("pr", state.app.id, name)
        else:
            conn.send(frames.encode_internal("pusher_internal:subscription_succeeded", {}, name))
            if channel.type.cache:
                self._replay_cache(state, conn, name)
        self._mark("ch", state.app.id, name)

    def _after_unsubscribe(self, state: AppState, channel: Channel, removed_user: str | None,
                           vacated: bool) -> None:
        if channel.type.is_presence:
            self._mark("pr", state.app.id, channel.name)
        self._mark("ch", state.app.id, channel.name)

    def _count_changed(self, state: AppState, channel: Channel) -> None:
        self._mark("ch", state.app.id, channel.name)

    def _replay_cache(self, state: AppState, conn: Connection, name: str) -> None:
        cached = state.cache.get(name)
        if cached is not None and cached.expires_at > self.clock():
            conn.send(frames.encode(cached.event, cached.data, name))
            return
        asyncio.get_running_loop().create_task(self._replay_shared_cache(state, conn, name))

    def _deliver_cached(self, state: AppState, name: str, event: str, data: str, exclude: str | None,
                        event_id: str) -> int:
        """A cache channel's event from another node. A subscriber that just got this very event from the
        shared cache (it subscribed while the event was on its way) does not get it a second time."""
        state.cache[name] = Cached(event, data, self.clock() + c.CACHE_TTL)
        channel = state.channels.get(name)
        if channel is None:
            return 0
        frame = frames.ws_frame(frames.encode(event, data, name))
        delivered = 0
        for conn in channel.subscribers:
            sub = conn.subscriptions.get(name)
            if conn.socket_id == exclude or sub is None or sub.cache_id == event_id:
                continue
            sub.cache_id = event_id
            conn.push(frame)
            delivered += 1
        return delivered

    async def _replay_shared_cache(self, state: AppState, conn: Connection, name: str) -> None:
        # This node may have started after the event was published: the cache lives in the store too.
        raw = None
        with contextlib.suppress(StoreUnavailable):
            raw = await self.store.get_expiring("cache", sync.channel_key(state.app.id, name))
        if conn.closing:
            return
        cached = decode(raw)  # the store gives bytes, which frames.data_object does not read
        sub = conn.subscriptions.get(name)
        if sub is None:
            return  # unsubscribed meanwhile
        if cached is None or float(cached.get("exp", 0)) <= time.time():
            if sub.cache_id is None:  # unless an event arrived meanwhile: then there is no miss to report
                conn.send(frames.encode_internal("pusher:cache_miss", {}, name))
                self.observer.cache_miss(state.app, name)
        elif sub.cache_id != cached.get("id"):
            sub.cache_id = str(cached.get("id"))
            conn.send(frames.encode(str(cached.get("event")), str(cached.get("data")), name))

    def _store_cache(self, app_id: str, channel: str, event: str, data: str, event_id: str) -> None:
        async def put() -> None:
            with contextlib.suppress(StoreUnavailable):
                await self.store.put_expiring("cache", sync.channel_key(app_id, channel), orjson.dumps(
                    {"event": event, "data": data, "exp": time.time() + c.CACHE_TTL, "id": event_id}))
        asyncio.get_running_loop().create_task(put())

    def _user_online(self, state: AppState, user_id: str) -> None:
        self._mark("us", state.app.id, user_id)

    def _user_offline(self, state: AppState, user_id: str) -> None:
        self._mark("us", state.app.id, user_id)

    def _watchlist_status(self, state: AppState, conn: Connection) -> None:
        async def status() -> None:
            online: set[str] = set()
            with contextlib.suppress(StoreUnavailable):
                docs = await self.store.get_many([sync.user_key(state.app.id, u) for u in conn.watchlist])
                online = {u for u, raw in zip(conn.watchlist, docs, strict=True) if raw is not None}
            online |= {u for u in conn.watchlist if u in state.users}
            if not conn.closing:
                send_watchlist_status(conn, online)
        asyncio.get_running_loop().create_task(status())

    # -- frames for cluster transitions ------------------------------------------------------

    def _member_frames(self, state: AppState, name: str, user_id: str, info: Any, added: bool) -> None:
        """Tell this node's subscribers that a member joined or left, once: frames are sent only when the
        change is news to them, so an envelope and a reconciliation can both report it safely."""
        channel = state.channels.get(name)
        if channel is None or (user_id in channel.known) == added:
            return
        if added:
            channel.known[user_id] = info
            payload: dict[str, Any] = {"user_id": user_id}
            if info is not None:
                payload["user_info"] = info
            frame = frames.ws_frame(frames.encode_internal("pusher_internal:member_added", payload, name))
        else:
            del channel.known[user_id]
            frame = frames.ws_frame(frames.encode_internal("pusher_internal:member_removed",
                                                           {"user_id": user_id}, name))
        for conn in channel.subscribers:
            sub = conn.subscriptions.get(name)
            if sub is not None and sub.ready and sub.user_id != user_id:
                conn.push(frame)

    def reconcile(self, state: AppState, name: str, members: dict[str, Any]) -> None:
        """Bring this node's subscribers in line with the cluster's member list (after a broker or store
        outage, a lost envelope, or simply a join racing with this node's own update)."""
        channel = state.channels.get(name)
        if channel is None:
            return
        # Right after the store lost its data the other nodes are still re-publishing their members: a member
        # missing then is not gone. Removals wait until they had time, then the channel is read again.
        missing = [u for u in channel.known if u not in members]
        wait = self.settle_until - time.monotonic()
        if missing and wait > 0:  # look again as soon as the peers had their time, not at the next periodic pass
            asyncio.get_running_loop().call_later(wait + 0.05, self._mark, "pr", state.app.id, name)
        elif wait <= 0:
            for uid in missing:
                self._member_frames(state, name, uid, None, False)
        for uid, info in members.items():
            if uid not in channel.known:
                self._member_frames(state, name, uid, info, True)

    def _count_frames(self, state: AppState, name: str, count: int, seq: int) -> None:
        channel = state.channels.get(name)
        if channel is None or channel.type.is_presence or not state.app.settings.subscription_count_events:
            return
        if seq <= channel.count_seq:  # an older count that arrived late (from another node, or after awaits)
            return
        channel.count_seq = seq
        frame = frames.ws_frame(frames.encode_internal(
            "pusher_internal:subscription_count", {"subscription_count": count}, name))
        for conn in channel.subscribers:
            conn.push(frame)

    # -- the worker --------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        from vask.cluster.worker import sync_batch

        while True:
            await self.dirty_ready.wait()
            self.dirty_ready.clear()
            while self.dirty:
                batch = dict(list(self.dirty.items())[:64])
                for key in batch:
                    del self.dirty[key]
                try:
                    await sync_batch(self, batch)
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

    async def counts(self, app_id: str, name: str) -> int:
        raw, _ = await self.store.get(sync.channel_key(app_id, name))
        return total(decode(raw))

    async def set_count(self, key: str, count: int) -> tuple[Any, Any]:
        return await update(self.store, key, set_count(self.node_id, count))
