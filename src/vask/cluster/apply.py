"""What cluster-wide transitions and other nodes' envelopes mean for this node's own subscribers.

Member frames are sent only when the change is news to this node's subscribers (``Channel.known``), so an
envelope and a reconciliation can both report one change safely; counts carry the count document's version,
so an older count never replaces a newer one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vask.cluster import envelopes as env
from vask.cluster.node import Node
from vask.cluster.sync import Dirty, Kind
from vask.core.state import AppState, Cached
from vask.protocol import constants as c
from vask.protocol import frames


def apply(node: Node, state: AppState, envelope: env.Envelope) -> None:
    hub, body = node.hub, envelope.body
    if isinstance(body, env.Publish):
        if body.event_id:
            delivered = deliver_cached(node, state, body)
        else:
            delivered = hub.deliver(state.app, body.channel, body.event, body.data, body.exclude)
        hub.observer.delivered(state.app, body.channel, delivered)
    elif isinstance(body, env.ClientEvent):
        channel = state.channels.get(body.channel)
        if channel is not None:
            frame = frames.ws_frame(frames.encode(body.event, body.data, body.channel, body.user_id))
            hub.observer.delivered(state.app, body.channel, hub.fan_out(channel.subscribers, frame, body.exclude))
    elif isinstance(body, env.MemberAdded):
        member_frames(state, body.channel, body.user_id, body.info, True)
    elif isinstance(body, env.MemberRemoved):
        member_frames(state, body.channel, body.user_id, None, False)
    elif isinstance(body, env.Count):
        count_frames(state, body.channel, body.count, body.version)
    elif isinstance(body, env.Watch):
        hub.notify_watchers(state, body.user_id, body.online)
    else:
        hub.terminate_local(state.app.id, body.user_id)


def member_frames(state: AppState, name: str, user_id: str, info: Any, added: bool) -> None:
    """Tell this node's subscribers that a member joined or left, once."""
    channel = state.channels.get(name)
    if channel is None or (user_id in channel.known) == added:
        return
    if added:
        channel.known[user_id] = info
        frame = frames.ws_frame(frames.member_added(name, user_id, info))
    else:
        del channel.known[user_id]
        frame = frames.ws_frame(frames.member_removed(name, user_id))
    for conn in channel.subscribers:
        sub = conn.subscriptions.get(name)
        if sub is not None and sub.ready and sub.user_id != user_id:
            conn.push(frame)


def reconcile(node: Node, state: AppState, name: str, members: dict[str, Any]) -> None:
    """Bring this node's subscribers in line with the cluster's member list (after a broker or store
    outage, a lost envelope, or simply a join racing with this node's own update)."""
    channel = state.channels.get(name)
    if channel is None:
        return
    # Right after the store lost its data the other nodes are still re-publishing their members: a member
    # missing then is not gone. Removals wait until they had time, then the channel is read again.
    missing = [u for u in channel.known if u not in members]
    wait = node.settle_until - node.clock()
    if missing and wait > 0:  # look again as soon as the peers had their time, not at the next periodic pass
        asyncio.get_running_loop().call_later(wait + 0.05, node.mark, Dirty(Kind.PRESENCE, state.app.id, name))
    elif wait <= 0:
        for uid in missing:
            member_frames(state, name, uid, None, False)
    for uid, info in members.items():
        if uid not in channel.known:
            member_frames(state, name, uid, info, True)


def count_frames(state: AppState, name: str, count: int, seq: int) -> None:
    channel = state.channels.get(name)
    if channel is None or channel.type.is_presence or not state.app.settings.subscription_count_events:
        return
    if seq <= channel.count_seq:  # an older count that arrived late (from another node, or after awaits)
        return
    channel.count_seq = seq
    frame = frames.ws_frame(frames.subscription_count(name, count))
    for conn in channel.subscribers:
        conn.push(frame)


def deliver_cached(node: Node, state: AppState, body: env.Publish) -> int:
    """A cache channel's event from another node. A subscriber that just got this very event from the
    shared cache (it subscribed while the event was on its way) does not get it a second time."""
    name = body.channel
    state.cache[name] = Cached(body.event, body.data, node.hub.clock() + c.CACHE_TTL)
    channel = state.channels.get(name)
    if channel is None:
        return 0
    frame = frames.ws_frame(frames.encode(body.event, body.data, name))
    delivered = 0
    for conn in channel.subscribers:
        sub = conn.subscriptions.get(name)
        if conn.socket_id == body.exclude or sub is None or sub.cache_id == body.event_id:
            continue
        sub.cache_id = body.event_id
        conn.push(frame)
        delivered += 1
    return delivered
