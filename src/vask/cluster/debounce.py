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

from vask.apps.base import App
from vask.cluster import documents as docs
from vask.cluster import sync
from vask.cluster.documents import Counts, Marker, Markers, Presence
from vask.cluster.node import Node
from vask.cluster.store import StoreUnavailable, segment

GRACE = 2.0  # seconds a marker outlives its delay before it is treated as abandoned


def marker_key(app_id: str, channel: str, user_id: str | None) -> str:
    if user_id is None:
        return f"pv.{segment(app_id)}.{segment(channel)}"
    return f"pm.{segment(app_id)}.{segment(channel)}.{segment(user_id)}"


def _emit(node: Node, app: App, channel: str, user_id: str | None) -> None:
    if user_id is None:
        node.hub.observer.channel_vacated(app, channel)
    else:
        node.hub.observer.member_removed(app, channel, user_id)


def _held(node: Node, doc: Markers | None) -> dict[str, Marker]:
    """node → marker, of the markers in ``doc`` not yet abandoned."""
    limit = node.wall() - node.vacate_delay - GRACE
    return {n: m for n, m in (doc.held if doc else {}).items() if m.at > limit}


async def mark(node: Node, app_id: str, channel: str, user_id: str | None = None) -> str | None:
    """Write this node's marker before a departure that may empty the channel; its token, or None when
    there is no delay (or the departure is old news)."""
    if node.vacate_delay <= 0 or node.quiet:
        return None
    token = secrets.token_hex(8)
    entry = Marker(node.wall(), token, app_id, channel, user_id)

    def add(doc: Markers | None) -> Markers:
        return Markers({**_held(node, doc), node.node_id: entry})

    await docs.update(node.store, marker_key(app_id, channel, user_id), Markers, add)
    return token


async def settle(node: Node, app: App | None, app_id: str, channel: str, user_id: str | None,
                 token: str | None, departed_now: bool) -> None:
    """After the count update: hold the webhook if this was the departure, else take the marker back."""
    if token is None:
        if departed_now and app is not None:
            await departed(node, app, channel, user_id)
        return
    key = marker_key(app_id, channel, user_id)
    if not departed_now or app is None:
        await _take(node, key, node.node_id, token)
        return

    async def release() -> None:
        await asyncio.sleep(node.vacate_delay)
        with contextlib.suppress(StoreUnavailable):
            if await _take(node, key, node.node_id, token):
                _emit(node, app, channel, user_id)

    node.spawn(release(), "webhook-delay")


async def departed(node: Node, app: App, channel: str, user_id: str | None = None) -> None:
    """A departure seen after the fact (a dead node's members): hold its webhook all the same."""
    if node.vacate_delay <= 0:
        _emit(node, app, channel, user_id)
        return
    token = await mark(node, app.id, channel, user_id)
    if token is None:
        return  # quiet: re-published state, already reported
    await settle(node, app, app.id, channel, user_id, token, True)


async def returned(node: Node, app_id: str, channel: str, user_id: str | None = None) -> bool:
    """The channel filled (or the user joined) again: True when that cancelled a held departure."""
    if node.vacate_delay <= 0:
        return False
    taken = False

    def take_all(doc: Markers | None) -> None:
        nonlocal taken
        taken = bool(_held(node, doc))
        return None

    await docs.update(node.store, marker_key(app_id, channel, user_id), Markers, take_all)
    return taken


async def _take(node: Node, key: str, owner: str, token: str | None) -> bool:
    """Delete ``owner``'s marker at ``key`` (only the one with ``token``, unless None); True when it was there."""
    taken = False

    def change(doc: Markers | None) -> Markers | None:
        nonlocal taken
        entry = doc.held.get(owner) if doc else None
        taken = entry is not None and (token is None or entry.token == token)
        kept = {n: m for n, m in _held(node, doc).items() if not (taken and n == owner)}
        return Markers(kept) if kept else None

    await docs.update(node.store, key, Markers, change)
    return taken


async def release_abandoned(node: Node, dead_node: str) -> None:
    """Send the held webhooks of a node that died before its delay ran out.

    Runs before the clean-up removes the dead node's entries: a marker whose channel (or member) is still
    there belongs to a departure that never reached the count, so it is dropped and the clean-up's own
    transition reports the departure once.
    """
    for key in await node.store.keys("pv.") + await node.store.keys("pm."):
        markers = await docs.get(node.store, Markers, key)
        entry = markers.held.get(dead_node) if markers else None
        if entry is None or not await _take(node, key, dead_node, None):
            continue
        if entry.user_id is None:
            counts = await docs.get(node.store, Counts, sync.channel_key(entry.app_id, entry.channel))
            gone = counts is None or counts.total == 0
        else:
            members = await docs.get(node.store, Presence, sync.presence_key(entry.app_id, entry.channel))
            gone = members is None or entry.user_id not in members.members
        app = await node.app_by_id(entry.app_id)
        if gone and app is not None:
            _emit(node, app, entry.channel, entry.user_id)
