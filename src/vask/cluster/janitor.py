"""Node liveness: heartbeats with expiry, and the clean-up of a node that died without saying goodbye.

A node that stops heart-beating for ``node_timeout`` seconds is dead. One live node (whoever takes the lock)
removes the dead node's entries from every key in its registry; the usual before/after comparison then yields
each member_removed / channel_vacated exactly once. Bound: a crashed node's members and connections leave the
cluster-wide state within node_timeout plus one check interval.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING

from vask.cluster import debounce, sync
from vask.cluster.store import StoreUnavailable, decode, unsegment, update
from vask.cluster.worker import channel_transitions, user_transitions

if TYPE_CHECKING:
    from vask.cluster.hub import ClusterHub

log = logging.getLogger("vask.cluster")

RECONCILE_EVERY = 5.0  # seconds between re-reads of the presence members of this node's channels


async def heartbeat_loop(hub: ClusterHub, node_timeout: float) -> None:
    interval = max(node_timeout / 6, 0.2)
    beat = checked = 0.0
    reachable_since: float | None = None
    while True:
        try:
            if time.monotonic() - beat >= interval:
                beat = time.monotonic()
                await hub.store.put_expiring("nodes", hub.node_id, hub.region.encode())
                if reachable_since is None:
                    reachable_since = time.monotonic()
                await check_epoch(hub)
                # After an outage every node's heartbeat may have expired: a node is only judged dead once
                # the others had a full node_timeout to beat again, or live nodes would be reaped.
                if time.monotonic() - reachable_since >= node_timeout:
                    await reap_dead_nodes(hub)
            # Refresh the other nodes' connection counts every second: quota checks read them.
            for app_id in list(hub.apps):
                hub._mark("cn", app_id, "")
            for account in list(hub.account_totals):
                hub._mark("ac", account, "")
            if time.monotonic() - checked >= RECONCILE_EVERY:
                checked = time.monotonic()
                # Re-read presence members now and then: heals a lost envelope (the bus is at-most-once).
                for state in list(hub.apps.values()):
                    for name, channel in list(state.channels.items()):
                        if channel.type.is_presence:
                            hub._mark("pr", state.app.id, name)
        except StoreUnavailable:
            reachable_since = None
        await asyncio.sleep(min(interval, 1.0))


async def check_epoch(hub: ClusterHub) -> None:
    """Notice a store that lost its data (a Redis restart without persistence) and re-publish our state."""
    _, after = await update(hub.store, "epoch", lambda doc: doc or {"id": secrets.token_hex(8)})
    epoch = after["id"] if after else ""
    if hub.epoch and epoch != hub.epoch:
        log.warning("the shared store lost its state; re-publishing this node's state")
        hub.quiet = True  # what we re-publish already happened: no webhooks for it
        # Every node notices within one heartbeat interval; resync gives them that, and a margin, to re-publish.
        await hub.resync()
    hub.epoch = epoch


async def reap_dead_nodes(hub: ClusterHub) -> None:
    live = set(await hub.store.keys_expiring("nodes"))
    for key in await hub.store.keys("nk."):
        node = unsegment(key[3:])
        if node in live or node == hub.node_id:
            continue
        if not await hub.store.create_expiring("locks", node, hub.node_id.encode()):
            continue  # another node is cleaning it up
        log.warning("node %s stopped heart-beating: removing its connections and members", node)
        await clean_node(hub, node)


async def clean_node(hub: ClusterHub, node: str) -> None:
    await debounce.release_abandoned(hub, node)  # first: it tells held departures from unfinished ones
    raw, _ = await hub.store.get(sync.registry_key(node))
    for key in (decode(raw) or {}).get("keys", []):
        before, after = await update(hub.store, key, sync.drop_node(node))
        kind, app_part, rest = key.split(".", 2) if key.count(".") >= 2 else (*key.split(".", 1), "")
        if kind not in ("ch", "us", "pr"):
            continue
        app_id = unsegment(app_part)
        if kind == "ch":
            await channel_transitions(hub, app_id, unsegment(rest), before, after)
        elif kind == "us":
            await user_transitions(hub, app_id, unsegment(rest), before, after)
        elif kind == "pr":
            await presence_removals(hub, app_id, unsegment(rest), before, after)
    await update(hub.store, sync.registry_key(node), lambda doc: None)


async def presence_removals(hub: ClusterHub, app_id: str, name: str, before: object, after: object) -> None:
    from vask.cluster import envelopes as env

    old = sync.members(before if isinstance(before, dict) else None)
    new = sync.members(after if isinstance(after, dict) else None)
    state = hub.apps.get(app_id)
    app = await hub.app_by_id(app_id)
    if app is None:
        return
    for uid in old.keys() - new.keys():
        await debounce.departed(hub, app, name, uid)
        hub.announce(env.MEMBER_REMOVED, app_id, c=name, u=uid)
        if state is not None:
            hub._member_frames(state, name, uid, None, False)
