"""Cluster-wide answers for the HTTP API: read the shared documents a request needs, then answer from them.

``rest.execute`` is synchronous and takes a ``HubApi``; this fetches first and hands it a read-only view
whose publish and terminate go to the hub (which tells the other nodes).
"""

from __future__ import annotations

from collections.abc import Callable

from vask.apps.base import App
from vask.cluster import documents as docs
from vask.cluster import sync
from vask.cluster.documents import CacheEntry, Counts, Presence
from vask.cluster.store import SharedStore, segment, unsegment
from vask.core.hub import Hub
from vask.protocol.api import CachedEvent, ChannelState
from vask.protocol.channels import channel_type
from vask.protocol.rest import Operation, RestCall


class ClusterView:
    def __init__(self, hub: Hub, states: dict[str, ChannelState], users: dict[str, list[str]]) -> None:
        self.hub = hub
        self.states = states
        self.users = users

    def publish(self, app: App, channel: str, event: str, data: str, exclude_socket_id: str | None = None) -> None:
        self.hub.publish(app, channel, event, data, exclude_socket_id)

    def channel_state(self, app_id: str, channel: str) -> ChannelState:
        return self.states.get(channel) or ChannelState(False, 0, 0, None)

    def occupied_channels(self, app_id: str, prefix: str = "") -> dict[str, ChannelState]:
        return {name: state for name, state in self.states.items() if state.occupied and name.startswith(prefix)}

    def presence_user_ids(self, app_id: str, channel: str) -> list[str]:
        return self.users.get(channel, [])

    def terminate_user(self, app_id: str, user_id: str) -> int:
        return self.hub.terminate_user(app_id, user_id)


def needs_view(call: RestCall) -> bool:
    if call.operation in (Operation.CHANNELS, Operation.CHANNEL, Operation.USERS):
        return True
    return any(event.info for event in call.events)


async def view_for(store: SharedStore, hub: Hub, call: RestCall, wall: Callable[[], float]) -> ClusterView:
    app_id = call.app.id
    if call.operation is Operation.CHANNELS:
        names = [unsegment(key.split(".", 2)[2]) for key in await store.keys(f"ch.{segment(app_id)}.")]
        names = [name for name in names if name.startswith(call.prefix)]
    elif call.operation in (Operation.CHANNEL, Operation.USERS):
        names = [call.channel]
    else:
        names = sorted({name for event in call.events for name in event.channels})
    counts = await store.get_many([sync.channel_key(app_id, name) for name in names])
    presence = [name for name in names if channel_type(name).is_presence]
    keys = [sync.presence_key(app_id, name) for name in presence]
    member_docs = await store.get_many(keys)
    members: dict[str, list[str]] = {}
    for name, key, raw in zip(presence, keys, member_docs, strict=True):
        found = docs.load(Presence, raw, key)
        members[name] = list(found.members) if found else []
    caches: dict[str, CachedEvent] = {}
    if call.operation is Operation.CHANNEL and channel_type(call.channel).cache:
        key = sync.channel_key(app_id, call.channel)
        cached = docs.load(CacheEntry, await store.get_expiring("cache", key), key)
        ttl = int(cached.expires - wall()) if cached else 0
        if cached and ttl > 0:
            caches[call.channel] = CachedEvent(cached.event, cached.data, ttl)
    states = {}
    for name, raw in zip(names, counts, strict=True):
        found_counts = docs.load(Counts, raw, sync.channel_key(app_id, name))
        subscriptions = found_counts.total if found_counts else 0
        states[name] = ChannelState(subscriptions > 0, subscriptions, len(members.get(name, [])),
                                    caches.get(name))
    return ClusterView(hub, states, members)
