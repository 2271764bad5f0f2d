"""Pusher's webhook delay across nodes: channel_vacated / member_removed wait, and a return cancels them.

On one node the webhook service holds a vacate for a few seconds and drops it (and the matching occupied) if
the channel fills again. In a cluster the return can happen on another node, so the hold lives in the shared
store as a marker: after the delay the departing node deletes its marker and sends the webhook only if the
marker is still there; a node that sees the channel (or user) come back deletes the markers first and then
sends nothing. Whoever deletes a marker wins, so exactly one outcome happens.

A node writes its marker *before* it removes its last entry from the count document (``mark``), and takes it
back if that turned out not to be the last one (``settle``). So a return, which always follows the departure
in the count document, always finds the marker: writing it afterwards left a window in which a return on
another node saw no marker and reported the channel occupied again, and the departure was reported too.
A marker left by a node that died is released by the node that cleans up after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import TYPE_CHECKING, Any

from vask.apps.base import App
from vask.cluster import sync
from vask.cluster.store import StoreUnavailable, segment, total, update

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


def _held(hub: ClusterHub, doc: dict[str, Any] | None) -> dict[str, Any]:
    """node → marker, of the markers in ``doc`` not yet abandoned."""
    limit = time.time() - hub.vacate_delay - GRACE
    return {n: e for n, e in (doc or {}).get("d", {}).items() if float(e.get("t", 0)) > limit}


async def mark(hub: ClusterHub, app_id: str, channel: str, user_id: str | None = None) -> str | None:
    """Write this node's marker before a departure that may empty the channel; its token, or None when
    there is no delay (or the departure is old news)."""
    if hub.vacate_delay <= 0 or hub.quiet:
        return None
    token = secrets.token_hex(8)
    entry = {"t": time.time(), "tok": token, "a": app_id, "c": channel, "u": user_id}

    def add(doc: dict[str, Any] | None) -> dict[str, Any]:
        return {"d": {**_held(hub, doc), hub.node_id: entry}}

    await update(hub.store, marker_key(app_id, channel, user_id), add)
    return token


async def settle(hub: ClusterHub, app: App | None, app_id: str, channel: str, user_id: str | None,
                 token: str | None, departed_now: bool) -> None:
    """After the count update: hold the webhook if this was the departure, else take the marker back."""
    if token is None:
        if departed_now and app is not None:
            await departed(hub, app, channel, user_id)
        return
    key = marker_key(app_id, channel, user_id)
    if not departed_now or app is None:
        await _take(hub, key, hub.node_id, token)
        return

    async def release() -> None:
        await asyncio.sleep(hub.vacate_delay)
        with contextlib.suppress(StoreUnavailable):
            if await _take(hub, key, hub.node_id, token):
                _emit(hub, app, channel, user_id)

    hub.spawn(release())


async def departed(hub: ClusterHub, app: App, channel: str, user_id: str | None = None) -> None:
    """A departure seen after the fact (a dead node's members): hold its webhook all the same."""
    if hub.vacate_delay <= 0:
        _emit(hub, app, channel, user_id)
        return
    token = await mark(hub, app.id, channel, user_id)
    if token is None:
        return  # quiet: re-published state, already reported
    await settle(hub, app, app.id, channel, user_id, token, True)


async def returned(hub: ClusterHub, app_id: str, channel: str, user_id: str | None = None) -> bool:
    """The channel filled (or the user joined) again: True when that cancelled a held departure."""
    if hub.vacate_delay <= 0:
        return False
    taken = False

    def take_all(doc: dict[str, Any] | None) -> None:
        nonlocal taken
        taken = bool(_held(hub, doc))
        return None

    await update(hub.store, marker_key(app_id, channel, user_id), take_all)
    return taken


async def _take(hub: ClusterHub, key: str, node: str, token: str | None) -> bool:
    """Delete ``node``'s marker at ``key`` (only the one with ``token``, unless None); True when it was there."""
    taken = False

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        nonlocal taken
        entry = (doc or {}).get("d", {}).get(node)
        taken = entry is not None and (token is None or entry.get("tok") == token)
        kept = {n: e for n, e in _held(hub, doc).items() if not (taken and n == node)}
        return {"d": kept} if kept else None

    await update(hub.store, key, change)
    return taken


async def release_abandoned(hub: ClusterHub, dead_node: str) -> None:
    """Send the held webhooks of a node that died before its delay ran out.

    Runs before the clean-up removes the dead node's entries: a marker whose channel (or member) is still
    there belongs to a departure that never reached the count, so it is dropped and the clean-up's own
    transition reports the departure once.
    """
    for key in await hub.store.keys("pv.") + await hub.store.keys("pm."):
        raw, _ = await hub.store.get(key)
        entry = (hub.decode(raw) or {}).get("d", {}).get(dead_node)
        if entry is None or not await _take(hub, key, dead_node, None):
            continue
        app_id, channel, user_id = str(entry["a"]), str(entry["c"]), entry.get("u")
        if user_id is None:
            raw, _ = await hub.store.get(sync.channel_key(app_id, channel))
            gone = total(hub.decode(raw)) == 0
        else:
            raw, _ = await hub.store.get(sync.presence_key(app_id, channel))
            gone = user_id not in sync.members(hub.decode(raw))
        app = await hub.app_by_id(app_id)
        if gone and app is not None:
            _emit(hub, app, channel, user_id)
