"""Pusher's webhook delay across nodes: channel_vacated / member_removed wait, and a return cancels them.

On one node the webhook service holds a vacate for a few seconds and drops it (and the matching occupied) if
the channel fills again. In a cluster the return can happen on another node, so the hold lives in the shared
store: the node that saw the departure writes a marker and, after the delay, deletes it and sends the webhook
only if the marker is still its own; a node that sees the channel (or user) come back deletes the marker first
and then sends nothing. Whoever deletes the marker wins, so exactly one outcome happens. A marker left by a
node that died is released by the node that cleans up after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import TYPE_CHECKING, Any

from vask.apps.base import App
from vask.cluster.store import StoreUnavailable, segment, update

if TYPE_CHECKING:
    from vask.cluster.hub import ClusterHub

GRACE = 2.0  # seconds a marker outlives its delay before it is treated as abandoned


def marker_key(app_id: str, channel: str, user_id: str | None) -> str:
    if user_id is None:
        return f"pv.{segment(app_id)}.{segment(channel)}"
    return f"pm.{segment(app_id)}.{segment(channel)}.{segment(user_id)}"


def _emit(hub: ClusterHub, app: App, channel: str, user_id: str | None) -> None:
    if user_id is None:
        hub.observer.channel_vacated(app, channel)
    else:
        hub.observer.member_removed(app, channel, user_id)


async def departed(hub: ClusterHub, app: App, channel: str, user_id: str | None = None) -> None:
    """The channel emptied (or the user's last connection left) cluster-wide: hold its webhook."""
    if hub.vacate_delay <= 0:
        _emit(hub, app, channel, user_id)
        return
    key = marker_key(app.id, channel, user_id)
    token = secrets.token_hex(8)
    marker = {"t": time.time(), "tok": token, "node": hub.node_id, "a": app.id, "c": channel, "u": user_id}
    await update(hub.store, key, lambda doc: marker)

    async def release() -> None:
        await asyncio.sleep(hub.vacate_delay)
        with contextlib.suppress(StoreUnavailable):
            if await _take(hub, key, lambda doc: doc.get("tok") == token):
                _emit(hub, app, channel, user_id)

    hub.spawn(release())


async def returned(hub: ClusterHub, app_id: str, channel: str, user_id: str | None = None) -> bool:
    """The channel filled (or the user joined) again: True when that cancelled a held departure."""
    if hub.vacate_delay <= 0:
        return False
    limit = hub.vacate_delay + GRACE
    return await _take(hub, marker_key(app_id, channel, user_id), lambda doc: time.time() - doc["t"] < limit)


async def _take(hub: ClusterHub, key: str, wanted: Any) -> bool:
    """Delete the marker at ``key``; True when it existed and ``wanted(marker)`` held."""
    taken = False

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal taken
        taken = doc is not None and bool(wanted(doc))
        return None if doc is None or taken or time.time() - doc["t"] > hub.vacate_delay + GRACE else doc

    await update(hub.store, key, change)
    return taken


async def release_abandoned(hub: ClusterHub, dead_node: str) -> None:
    """Send the held webhooks of a node that died before its delay ran out."""
    for key in await hub.store.keys("pv.") + await hub.store.keys("pm."):
        raw, _ = await hub.store.get(key)
        doc = hub.decode(raw)
        if doc is None or doc.get("node") != dead_node:
            continue
        if await _take(hub, key, lambda d: d.get("node") == dead_node):
            app = await hub.app_by_id(str(doc["a"]))
            if app is not None:
                _emit(hub, app, str(doc["c"]), doc.get("u"))
