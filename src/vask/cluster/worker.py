"""The sync worker's steps: write this node's local truth for a batch of keys and act on the transitions."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from vask.apps.base import App
from vask.cluster import debounce, sync
from vask.cluster import envelopes as env
from vask.cluster.store import total, update, version
from vask.protocol import frames

if TYPE_CHECKING:
    from vask.cluster.hub import ClusterHub


async def sync_batch(hub: ClusterHub, batch: dict[str, tuple[str, str, str]]) -> None:
    await asyncio.gather(*(sync_key(hub, key, *item) for key, item in batch.items()))


async def _app(hub: ClusterHub, app_id: str) -> App | None:
    return await hub.app_by_id(app_id)


async def _register(hub: ClusterHub, key: str, present: bool) -> None:
    """Keep this node's registry (what to undo if it dies) a superset of the keys it has entries in."""
    if present and key not in hub.registered:
        await update(hub.store, sync.registry_key(hub.node_id), sync.register(key))
        hub.registered.add(key)
    elif not present and key in hub.registered:
        hub.registered.discard(key)
        await update(hub.store, sync.registry_key(hub.node_id), sync.unregister(key))


async def sync_key(hub: ClusterHub, key: str, kind: str, app_id: str, name: str) -> None:
    state = hub.apps.get(app_id)
    if kind == "ch":
        channel = state.channels.get(name) if state else None
        count = len(channel.subscribers) if channel else 0
        # This node's last subscriber left: mark the possible vacate before the count says so (debounce).
        token = await debounce.mark(hub, app_id, name) if count == 0 and key in hub.registered else None
        await _register(hub, key, count > 0)
        before, after = await hub.set_count(key, count)
        if count == 0:
            await _register(hub, key, False)
        await channel_transitions(hub, app_id, name, before, after, token)
    elif kind == "pr":
        await sync_presence(hub, key, app_id, name)
    elif kind == "us":
        count = len(state.users.get(name, {})) if state else 0
        await _register(hub, key, count > 0)
        before, after = await hub.set_count(key, count)
        if count == 0:
            await _register(hub, key, False)
        await user_transitions(hub, app_id, name, before, after)
    elif kind == "ac":
        counter = hub.account_counter
        count = counter.local_connections(app_id) if counter is not None else 0
        await _register(hub, key, count > 0)
        _, after = await hub.set_count(key, count)
        hub.account_totals[app_id] = total(after) - count
    elif kind == "cn":
        count = len(state.connections) if state else 0
        await _register(hub, key, count > 0)
        _, after = await hub.set_count(key, count)
        # Other nodes' share; this node's own count is always read live.
        hub.app_totals[app_id] = total(after) - count


async def channel_transitions(hub: ClusterHub, app_id: str, name: str, before: Any, after: Any,
                              token: str | None = None) -> None:
    """Webhooks and counts for one count update; ``token``: this node's vacate marker, if it wrote one."""
    was, now = total(before), total(after)
    changed = was != now and not hub.quiet
    app = await _app(hub, app_id) if changed or token is not None else None
    if token is not None or (changed and now == 0):
        await debounce.settle(hub, app, app_id, name, None, token, changed and now == 0)
    if not changed or app is None:
        return
    if was == 0 and not await debounce.returned(hub, app_id, name):
        hub.observer.channel_occupied(app, name)
    if now > 0 and app.settings.subscription_count_events and not name.startswith(("presence-",)):
        seq = version(after)
        hub.announce(env.COUNT, app_id, c=name, n=now, s=seq)
        state = hub.apps.get(app_id)
        if state is not None:
            hub._count_frames(state, name, now, seq)
        hub.observer.subscription_count(app, name, now)


async def user_transitions(hub: ClusterHub, app_id: str, user_id: str, before: Any, after: Any) -> None:
    was, now = total(before) > 0, total(after) > 0
    if was == now or hub.quiet:
        return
    hub.announce(env.WATCH, app_id, u=user_id, on=now)
    state = hub.apps.get(app_id)
    if state is not None:
        hub._notify_watchers(state, user_id, "online" if now else "offline")


async def sync_presence(hub: ClusterHub, key: str, app_id: str, name: str) -> None:
    state = hub.apps.get(app_id)
    channel = state.channels.get(name) if state else None
    local = {uid: (m.connections, m.info) for uid, m in channel.members.items()} if channel else {}
    limit = state.app.settings.max_presence_members if state else 100
    refused: set[str] = set()
    waiting = hub.pending.pop((app_id, name), [])  # joins made after this point wait for the next pass
    # Users whose last connection here left: mark their possible member_removed before the update (debounce).
    leaving = sorted(hub.synced_members.get(key, set()) - local.keys())
    tokens = dict(zip(leaving, await asyncio.gather(*(debounce.mark(hub, app_id, name, u) for u in leaving)),
                      strict=True))
    await _register(hub, key, bool(local))
    before, after = await update(hub.store, key, sync.set_presence(hub.node_id, local, limit, refused))
    written = local.keys() - refused
    if written:
        hub.synced_members[key] = set(written)
    else:
        hub.synced_members.pop(key, None)
    if not local:
        await _register(hub, key, False)
    old, new = sync.members(before), sync.members(after)
    app = await _app(hub, app_id)
    gone = old.keys() - new.keys() if app is not None and not hub.quiet else set()
    for uid in set(tokens) | gone:
        await debounce.settle(hub, app, app_id, name, uid, tokens.get(uid), uid in gone)
    if app is not None and not hub.quiet:
        for uid in new.keys() - old.keys():
            if not await debounce.returned(hub, app_id, name, uid):
                hub.observer.member_added(app, name, uid)
            hub.announce(env.MEMBER_ADDED, app_id, c=name, u=uid, i=new[uid])
        for uid in gone:
            hub.announce(env.MEMBER_REMOVED, app_id, c=name, u=uid)
    if state is not None:
        hub.reconcile(state, name, new)
    if state is None:
        return
    payload = {"presence": {"count": len(new), "ids": list(new), "hash": new}}
    for conn in waiting:
        sub = conn.subscriptions.get(name)
        if conn.closing or sub is None or sub.ready:
            continue
        if sub.user_id in refused:
            conn.send(frames.encode_error(4100, f"Presence channel {name} is full: at most {limit} members"))
            hub.unsubscribe(conn, name)
            continue
        sub.ready = True
        conn.send(frames.encode_internal("pusher_internal:subscription_succeeded", payload, name))
