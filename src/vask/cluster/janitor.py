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

from vask.cluster import apply, debounce, sync
from vask.cluster import documents as docs
from vask.cluster import envelopes as env
from vask.cluster.documents import Counts, Epoch, Presence, Registry
from vask.cluster.node import Node
from vask.cluster.store import StoreUnavailable, unsegment
from vask.cluster.sync import Dirty, Kind
from vask.cluster.worker import channel_transitions, user_transitions

log = logging.getLogger("vask.cluster")

RECONCILE_EVERY = 5.0  # seconds between re-reads of the presence members of this node's channels


async def heartbeat_loop(node: Node) -> None:
    node_timeout = node.node_timeout
    interval = max(node_timeout / 6, 0.2)
    beat = checked = 0.0
    reachable_since: float | None = None
    while True:
        try:
            if node.clock() - beat >= interval:
                beat = node.clock()
                await node.store.put_expiring("nodes", node.node_id, node.region.encode())
                node.store_healthy = True
                if reachable_since is None:
                    reachable_since = node.clock()
                await check_epoch(node)
                # After an outage every node's heartbeat may have expired: a node is only judged dead once
                # the others had a full node_timeout to beat again, or live nodes would be reaped.
                if node.clock() - reachable_since >= node_timeout:
                    await reap_dead_nodes(node)
            # Refresh the other nodes' connection counts every second: quota checks read them.
            for app_id in list(node.hub.apps):
                node.mark(Dirty(Kind.CONNECTIONS, app_id))
            for account in list(node.account_totals):
                node.mark(Dirty(Kind.ACCOUNT, account))
            if node.clock() - checked >= RECONCILE_EVERY:
                checked = node.clock()
                # Re-read presence members now and then: heals a lost envelope (the bus is at-most-once).
                for state in list(node.hub.apps.values()):
                    for name, channel in list(state.channels.items()):
                        if channel.type.is_presence:
                            node.mark(Dirty(Kind.PRESENCE, state.app.id, name))
        except StoreUnavailable as exc:
            reachable_since = None
            if node.store_healthy:  # also when nothing local changes: /ready tells the truth
                log.warning("shared store unavailable: %s", exc)
            node.store_healthy = False
        await asyncio.sleep(min(interval, 1.0))


async def check_epoch(node: Node) -> None:
    """Notice a store that lost its data (a Redis restart without persistence) and re-publish our state."""
    _, after = await docs.update(node.store, "epoch", Epoch, lambda doc: doc or Epoch(secrets.token_hex(8)))
    epoch = after.id if after else ""
    if node.epoch and epoch != node.epoch:
        log.warning("the shared store lost its state; re-publishing this node's state")
        node.quiet = True  # what we re-publish already happened: no webhooks for it
        # Every node notices within one heartbeat interval; resync gives them that, and a margin, to re-publish.
        await node.resync()
    node.epoch = epoch


async def reap_dead_nodes(node: Node) -> None:
    live = set(await node.store.keys_expiring("nodes"))
    for key in await node.store.keys("nk."):
        dead = unsegment(key[3:])
        if dead in live or dead == node.node_id:
            continue
        if not await node.store.create_expiring("locks", dead, node.node_id.encode()):
            continue  # another node is cleaning it up
        log.warning("node %s stopped heart-beating: removing its connections and members", dead)
        await clean_node(node, dead)


async def clean_node(node: Node, dead: str) -> None:
    await debounce.release_abandoned(node, dead)  # first: it tells held departures from unfinished ones
    registry = await docs.get(node.store, Registry, sync.registry_key(dead))
    for key in registry.keys if registry else ():
        kind, app_part, rest = key.split(".", 2) if key.count(".") >= 2 else (*key.split(".", 1), "")
        if kind == Kind.PRESENCE:
            was, now = await docs.update(node.store, key, Presence, docs.drop_node_members(dead))
            await presence_removals(node, unsegment(app_part), unsegment(rest), was, now)
            continue
        before, after = await docs.update(node.store, key, Counts, docs.drop_node_counts(dead))
        if kind == Kind.CHANNEL:
            await channel_transitions(node, unsegment(app_part), unsegment(rest), before, after)
        elif kind == Kind.USER:
            await user_transitions(node, unsegment(app_part), unsegment(rest), before, after)
    await docs.update(node.store, sync.registry_key(dead), Registry, lambda doc: None)


async def presence_removals(node: Node, app_id: str, name: str, before: Presence | None,
                            after: Presence | None) -> None:
    old, new = before.infos() if before else {}, after.infos() if after else {}
    state = node.hub.apps.get(app_id)
    app = await node.app_by_id(app_id)
    if app is None:
        return
    for uid in old.keys() - new.keys():
        await debounce.departed(node, app, name, uid)
        node.announce(app_id, env.MemberRemoved(name, uid))
        if state is not None:
            apply.member_frames(state, name, uid, None, False)
