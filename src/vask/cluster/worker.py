"""The sync worker's steps: write this node's local truth for a batch of keys and act on the transitions."""

from __future__ import annotations

import asyncio
from typing import Any

from vask.apps.base import App
from vask.cluster import apply, debounce, sync
from vask.cluster import documents as docs
from vask.cluster import envelopes as env
from vask.cluster.documents import Counts, Presence, Registry
from vask.cluster.node import Node
from vask.cluster.sync import Dirty, Kind
from vask.core import session
from vask.core.connection import Connection
from vask.core.state import AppState
from vask.protocol import constants as c
from vask.protocol import frames


async def sync_batch(node: Node, batch: dict[str, Dirty]) -> None:
    await asyncio.gather(*(sync_key(node, key, item) for key, item in batch.items()))


async def _register(node: Node, key: str, present: bool) -> None:
    """Keep this node's registry (what to undo if it dies) a superset of the keys it has entries in."""
    if present and key not in node.registered:
        await docs.update(node.store, sync.registry_key(node.node_id), Registry, docs.register(key))
        node.registered.add(key)
    elif not present and key in node.registered:
        node.registered.discard(key)
        await docs.update(node.store, sync.registry_key(node.node_id), Registry, docs.unregister(key))


async def _set_count(node: Node, key: str, count: int) -> tuple[Counts | None, Counts | None]:
    """Write this node's count; the document before and after. The key is registered while it counts."""
    await _register(node, key, count > 0)
    before, after = await docs.update(node.store, key, Counts, docs.set_node_count(node.node_id, count))
    if count == 0:
        await _register(node, key, False)
    return before, after


async def sync_key(node: Node, key: str, item: Dirty) -> None:
    state = node.hub.apps.get(item.owner)
    kind, app_id, name = item
    if kind is Kind.CHANNEL:
        channel = state.channels.get(name) if state else None
        count = len(channel.subscribers) if channel else 0
        # This node's last subscriber left: mark the possible vacate before the count says so (debounce).
        token = await debounce.mark(node, app_id, name) if count == 0 and key in node.registered else None
        before, after = await _set_count(node, key, count)
        await channel_transitions(node, app_id, name, before, after, token)
    elif kind is Kind.PRESENCE:
        await sync_presence(node, key, app_id, name)
    elif kind is Kind.USER:
        count = len(state.users.get(name, {})) if state else 0
        before, after = await _set_count(node, key, count)
        await user_transitions(node, app_id, name, before, after)
    elif kind is Kind.ACCOUNT:
        counter = node.account_counter
        count = counter.local_connections(app_id) if counter is not None else 0
        _, after = await _set_count(node, key, count)
        node.account_totals[app_id] = _total(after) - count
    else:
        count = len(state.connections) if state else 0
        _, after = await _set_count(node, key, count)
        # Other nodes' share; this node's own count is always read live.
        node.app_totals[app_id] = _total(after) - count


def _total(doc: Counts | None) -> int:
    return doc.total if doc else 0


async def channel_transitions(node: Node, app_id: str, name: str, before: Counts | None, after: Counts | None,
                              token: str | None = None) -> None:
    """Webhooks and counts for one count update; ``token``: this node's vacate marker, if it wrote one."""
    was, now = _total(before), _total(after)
    changed = was != now and not node.quiet
    app = await node.app_by_id(app_id) if changed or token is not None else None
    if token is not None or (changed and now == 0):
        await debounce.settle(node, app, app_id, name, None, token, changed and now == 0)
    if not changed or app is None:
        return
    if was == 0 and not await debounce.returned(node, app_id, name):
        node.hub.observer.channel_occupied(app, name)
    if now > 0 and app.settings.subscription_count_events and not name.startswith(("presence-",)):
        seq = after.seq if after else 0
        node.announce(app_id, env.Count(name, now, seq))
        state = node.hub.apps.get(app_id)
        if state is not None:
            apply.count_frames(state, name, now, seq)
        node.hub.observer.subscription_count(app, name, now)


async def user_transitions(node: Node, app_id: str, user_id: str, before: Counts | None,
                           after: Counts | None) -> None:
    was, now = _total(before) > 0, _total(after) > 0
    if was == now or node.quiet:
        return
    node.announce(app_id, env.Watch(user_id, now))
    state = node.hub.apps.get(app_id)
    if state is not None:
        node.hub.notify_watchers(state, user_id, now)


async def sync_presence(node: Node, key: str, app_id: str, name: str) -> None:
    state = node.hub.apps.get(app_id)
    channel = state.channels.get(name) if state else None
    local = {uid: (m.connections, m.info) for uid, m in channel.members.items()} if channel else {}
    limit = state.app.settings.max_presence_members if state else 100
    refused: set[str] = set()
    waiting = node.pending.pop((app_id, name), [])  # joins made after this point wait for the next pass
    # Users whose last connection here left: mark their possible member_removed before the update (debounce).
    leaving = sorted(node.synced_members.get(key, set()) - local.keys())
    tokens = dict(zip(leaving, await asyncio.gather(*(debounce.mark(node, app_id, name, u) for u in leaving)),
                      strict=True))
    await _register(node, key, bool(local))
    before, after = await docs.update(node.store, key, Presence,
                                      docs.set_presence(node.node_id, local, limit, refused))
    written = local.keys() - refused
    if written:
        node.synced_members[key] = set(written)
    else:
        node.synced_members.pop(key, None)
    if not local:
        await _register(node, key, False)
    old, new = before.infos() if before else {}, after.infos() if after else {}
    app = await node.app_by_id(app_id)
    await _presence_transitions(node, app, app_id, name, old, new, tokens)
    if state is not None:
        apply.reconcile(node, state, name, new)
        _answer_joins(node, state, name, new, waiting, refused, limit)


async def _presence_transitions(node: Node, app: App | None, app_id: str, name: str, old: dict[str, Any],
                                new: dict[str, Any], tokens: dict[str, str | None]) -> None:
    gone = old.keys() - new.keys() if app is not None and not node.quiet else set()
    for uid in set(tokens) | gone:
        await debounce.settle(node, app, app_id, name, uid, tokens.get(uid), uid in gone)
    if app is None or node.quiet:
        return
    for uid in new.keys() - old.keys():
        if not await debounce.returned(node, app_id, name, uid):
            node.hub.observer.member_added(app, name, uid)
        node.announce(app_id, env.MemberAdded(name, uid, new[uid]))
    for uid in gone:
        node.announce(app_id, env.MemberRemoved(name, uid))


def _answer_joins(node: Node, state: AppState, name: str, members: dict[str, Any],
                  waiting: list[Connection], refused: set[str], limit: int) -> None:
    """The presence joins that waited for the cluster's member list: succeeded, or refused when full."""
    for conn in waiting:
        sub = conn.subscriptions.get(name)
        if conn.closing or sub is None or sub.ready:
            continue
        if sub.user_id in refused:
            # As on one node (vask.core.session): pusher:error, and subscription_error for the channel.
            session.error(node.hub, conn, c.OVER_CAPACITY,
                          f"Presence channel {name} is full: at most {limit} members", name, status=403)
            node.hub.unsubscribe(conn, name)
            continue
        sub.ready = True
        conn.send(frames.subscription_succeeded(name, members))
        channel = state.channels.get(name)
        if channel is not None and channel.type.cache:  # presence-cache-: the last event, after succeeded
            node.hub.replay_cache(state, conn, name)
