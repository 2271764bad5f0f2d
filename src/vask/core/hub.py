"""The node's local state: connections, channels, presence members, signed-in users, cache channels.

Everything here runs on one event loop without awaiting: a publish frames its message once and queues the
same bytes on every subscriber's outbox. Implements ``HubApi`` for the HTTP API. On a cluster node a
``Replica`` is attached (vask.core.replica): the hub reports its transitions there instead of deciding alone
what they mean cluster-wide.
"""

from __future__ import annotations

from typing import Any

from vask.apps.base import App
from vask.console.feed import ConsoleFeed
from vask.core.connection import Connection, Subscription
from vask.core.observer import Observer, Observers
from vask.core.replica import Replica
from vask.core.state import AppState, Cached, Channel, Member
from vask.protocol import constants as c
from vask.protocol import frames
from vask.protocol.api import CachedEvent, ChannelState
from vask.protocol.channels import channel_type, user_channel_owner


class Hub:
    def __init__(self, clock: Any, observer: Observer | None = None) -> None:
        self.clock = clock  # a callable returning monotonic seconds; injected so tests control time
        self.observer = observer or Observers()
        self.replica: Replica | None = None  # set by vask.cluster.replicator on a cluster node
        self.apps: dict[str, AppState] = {}
        self.connection_count = 0
        # The debug console's feed (vask.console): emit points ask it once per event, never per delivery.
        self.console = ConsoleFeed()

    # -- connections -------------------------------------------------------------------------

    def state(self, app: App) -> AppState:
        state = self.apps.get(app.id)
        if state is None:
            state = self.apps[app.id] = AppState(app)
        return state

    def refresh_app(self, app_id: str, app: App | None) -> None:
        """The store's current record of an app: open connections follow its settings from now on, and are
        closed when it was disabled (4003) or deleted (4001)."""
        state = self.apps.get(app_id)
        if state is None:
            return
        if app is None or not app.enabled:
            code, reason = (c.APP_NOT_FOUND, "Application deleted") if app is None else \
                (c.APP_DISABLED, "Application disabled")
            for conn in list(state.connections):
                self.close(conn, code, reason)
            return
        if app == state.app:
            return
        state.app = app
        for conn in state.connections:
            conn.app = app

    def app_connections(self, app_id: str) -> int:
        """Cluster-wide on a cluster node: the other nodes' counts as last synced plus this node's live one."""
        state = self.apps.get(app_id)
        local = len(state.connections) if state else 0
        return local if self.replica is None else local + self.replica.other_connections(app_id)

    def add(self, conn: Connection) -> None:
        self.state(conn.app).connections[conn] = None
        self.connection_count += 1
        if self.replica is not None:
            self.replica.connections_changed(conn.app.id)

    def remove(self, conn: Connection) -> None:
        """Forget a connection that closed: leave its channels and sign it out. Idempotent."""
        state = self.apps.get(conn.app.id)
        if state is None or conn not in state.connections:
            return
        for name in list(conn.subscriptions):
            self.unsubscribe(conn, name)
        if conn.user_id is not None:
            self._sign_out(state, conn)
        for watched in conn.watchlist:
            self._discard(state.watchers, watched, conn)
        del state.connections[conn]
        self.connection_count -= 1
        if self.replica is not None:
            self.replica.connections_changed(conn.app.id)
        if self.console.watching(conn.app.id):
            self.console.note(conn.app.id, "disconnection", None, conn.socket_id, user_id=conn.user_id)
        if not state.connections and not state.cache:
            del self.apps[conn.app.id]

    def close(self, conn: Connection, code: int, reason: str) -> None:
        """Close with a Pusher code: queued frames go first, then the close frame; state is released now."""
        if conn.closing:
            return
        if code >= 4000:
            conn.send(frames.encode_error(code, reason))
        if self.console.watching(conn.app.id):
            self.console.note(conn.app.id, "error", None, conn.socket_id, code=code, message=reason, close=True)
        conn.closing = True
        self.remove(conn)
        conn.peer.close(code, reason)

    # -- channels ----------------------------------------------------------------------------

    def channel(self, state: AppState, name: str) -> Channel:
        channel = state.channels.get(name)
        if channel is None:
            channel = state.channels[name] = Channel(name, channel_type(name))
        return channel

    def subscribe(self, conn: Connection, name: str, user_id: str | None = None, user_info: Any = None) -> bool:
        """Add ``conn`` to a channel (and as a presence member). Returns False if the channel is full."""
        state = self.state(conn.app)
        channel = self.channel(state, name)
        new_member = False
        if user_id is not None:
            member = channel.members.get(user_id)
            if member is None:
                if len(channel.members) >= conn.app.settings.max_presence_members:
                    if not channel.subscribers:
                        del state.channels[name]
                    return False
                channel.members[user_id] = Member(user_info, 1)
                new_member = True
            else:
                member.connections += 1
                member.info = user_info  # the latest join's info wins, as on Pusher
        occupied = not channel.subscribers
        channel.subscribers[conn] = None
        conn.subscriptions[name] = Subscription(name, user_id)
        if channel.type.needs_auth:
            conn.authorized = True
        if self.console.watching(state.app.id):
            self.console.note(state.app.id, "subscribed", name, conn.socket_id, user_id=user_id)
        self._after_subscribe(state, conn, channel, occupied, new_member, user_id)
        return True

    def _after_subscribe(self, state: AppState, conn: Connection, channel: Channel, occupied: bool,
                         new_member: bool, user_id: str | None) -> None:
        name = channel.name
        replica = self.replica
        if replica is not None and channel.type.is_presence:
            # Succeeded (and a cached event) once the cluster's member list is known: vask.cluster.worker.
            conn.subscriptions[name].ready = False
            replica.presence_changed(state.app.id, name, conn)
        else:
            members = channel.member_infos() if channel.type.is_presence else None
            conn.send(frames.subscription_succeeded(name, members))
            if channel.type.cache:
                self.replay_cache(state, conn, name)
        if replica is not None:
            replica.channel_changed(state.app.id, name)
            return
        if occupied:
            self.observer.channel_occupied(state.app, name)
        if new_member and user_id is not None:
            frame = frames.ws_frame(frames.member_added(name, user_id, channel.members[user_id].info))
            for other in channel.subscribers:
                if other is not conn:
                    other.push(frame)
            self.observer.member_added(state.app, name, user_id)
        self._count_changed(state, channel)

    def replay_cache(self, state: AppState, conn: Connection, name: str) -> None:
        cached = state.cache.get(name)
        if cached is not None and cached.expires_at <= self.clock():
            del state.cache[name]
            cached = None
        if cached is not None:
            conn.send(frames.encode(cached.event, cached.data, name))
        elif self.replica is not None:
            self.replica.cache_missed(state, conn, name)
        else:
            conn.send(frames.cache_miss(name))
            self.observer.cache_miss(state.app, name)

    def unsubscribe(self, conn: Connection, name: str) -> None:
        sub = conn.subscriptions.pop(name, None)
        state = self.apps.get(conn.app.id)
        if sub is None or state is None:
            return
        channel = state.channels.get(name)
        if channel is None:
            return
        channel.subscribers.pop(conn, None)
        removed_user: str | None = None
        if sub.user_id is not None:
            member = channel.members.get(sub.user_id)
            if member is not None:
                member.connections -= 1
                if member.connections <= 0:
                    del channel.members[sub.user_id]
                    removed_user = sub.user_id
        vacated = not channel.subscribers
        if vacated:
            del state.channels[name]
        if self.console.watching(state.app.id):
            self.console.note(state.app.id, "unsubscribed", name, conn.socket_id, user_id=sub.user_id)
        self._after_unsubscribe(state, channel, removed_user, vacated)
        if conn.authorized and conn.user_id is None:
            conn.authorized = any(channel_type(n).needs_auth for n in conn.subscriptions)

    def _after_unsubscribe(self, state: AppState, channel: Channel, removed_user: str | None,
                           vacated: bool) -> None:
        name = channel.name
        if self.replica is not None:
            if channel.type.is_presence:
                self.replica.presence_changed(state.app.id, name)
            self.replica.channel_changed(state.app.id, name)
            return
        if removed_user is not None:
            frame = frames.ws_frame(frames.member_removed(name, removed_user))
            for other in channel.subscribers:
                other.push(frame)
            self.observer.member_removed(state.app, name, removed_user)
        if vacated:
            self.observer.channel_vacated(state.app, name)
        else:
            self._count_changed(state, channel)

    def _count_changed(self, state: AppState, channel: Channel) -> None:
        if channel.type.is_presence or not state.app.settings.subscription_count_events:
            return
        count = len(channel.subscribers)
        now = self.clock()
        # Busy channels get the count at most every few seconds, as Pusher documents.
        if count > c.SUBSCRIPTION_COUNT_THROTTLE_ABOVE and now - channel.count_sent_at < c.SUBSCRIPTION_COUNT_INTERVAL:
            channel.count_dirty = True
            return
        self._send_count(state, channel, now)

    def _send_count(self, state: AppState, channel: Channel, now: float) -> None:
        count = len(channel.subscribers)
        channel.count_sent_at = now
        channel.count_dirty = False
        frame = frames.ws_frame(frames.subscription_count(channel.name, count))
        for conn in channel.subscribers:
            conn.push(frame)
        self.observer.subscription_count(state.app, channel.name, count)

    # -- publishing --------------------------------------------------------------------------

    def publish(self, app: App, channel: str, event: str, data: str,
                exclude_socket_id: str | None = None) -> None:
        delivered = self.deliver(app, channel, event, data, exclude_socket_id)
        self.observer.broadcast(app, channel, delivered)
        if self.replica is not None:
            self.replica.published(app, channel, event, data, exclude_socket_id)

    def deliver(self, app: App, channel: str, event: str, data: str, exclude_socket_id: str | None) -> int:
        """Local part of a publish: frame once, queue on this node's subscribers, keep cache channels' event."""
        state = self.state(app)
        frame = frames.ws_frame(frames.encode(event, data, channel))
        owner = user_channel_owner(channel)
        if owner is not None:
            targets: dict[Connection, None] = state.users.get(owner, {})
        else:
            found = state.channels.get(channel)
            targets = found.subscribers if found else {}
            if "cache-" in channel and channel_type(channel).cache:  # every cache prefix has "cache-"
                state.cache[channel] = Cached(event, data, self.clock() + c.CACHE_TTL)
        return self.fan_out(targets, frame, exclude_socket_id)

    @staticmethod
    def fan_out(targets: dict[Connection, None], frame: bytes, exclude_socket_id: str | None) -> int:
        # Connection.push inlined: this loop runs once per delivery, where a call costs more than the work.
        size = len(frame)
        delivered = 0
        for conn in targets:
            if conn.socket_id == exclude_socket_id:
                continue
            delivered += 1
            if conn.closing:
                continue
            outbox = conn.outbox
            if not outbox:
                conn.flusher.mark(conn)
            outbox.append(frame)
            conn.outbox_size += size
        return delivered

    def client_event(self, conn: Connection, channel: Channel, event: str, data: Any,
                     user_id: str | None) -> None:
        state = self.state(conn.app)
        frame = frames.ws_frame(frames.encode(event, data, channel.name, user_id))
        delivered = self.fan_out(channel.subscribers, frame, conn.socket_id)
        self.observer.client_event(state.app, channel.name, event, data, conn.socket_id, user_id)
        self.observer.broadcast(state.app, channel.name, delivered)
        if self.replica is not None:
            self.replica.client_event(state.app.id, channel.name, event, data, user_id, conn.socket_id)

    # -- users and watchlists ----------------------------------------------------------------

    def sign_in(self, conn: Connection, user_id: str, user_data: dict[str, Any], watchlist: list[str]) -> None:
        state = self.state(conn.app)
        conn.user_id = user_id
        conn.user_data = user_data
        conn.authorized = True
        sessions = state.users.setdefault(user_id, {})
        first = not sessions
        sessions[conn] = None
        conn.watchlist = watchlist
        for watched in watchlist:
            state.watchers.setdefault(watched, {})[conn] = None
        self._watchlist_status(state, conn)
        if first:
            self._user_changed(state, user_id, True)

    def _watchlist_status(self, state: AppState, conn: Connection) -> None:
        if self.replica is not None:
            self.replica.watchlist_status(state, conn)
            return
        frame = frames.watchlist_status(conn.watchlist, {u for u in conn.watchlist if u in state.users})
        if frame is not None:
            conn.send(frame)

    def _user_changed(self, state: AppState, user_id: str, online: bool) -> None:
        """A user's first connection signed in, or its last one went (cluster-wide: the replica decides)."""
        if self.replica is not None:
            self.replica.user_changed(state.app.id, user_id)
        else:
            self.notify_watchers(state, user_id, online)

    def _sign_out(self, state: AppState, conn: Connection) -> None:
        user_id = conn.user_id
        assert user_id is not None
        if self._discard(state.users, user_id, conn):
            self._user_changed(state, user_id, False)

    @staticmethod
    def notify_watchers(state: AppState, user_id: str, online: bool) -> None:
        watchers = state.watchers.get(user_id)
        if not watchers:
            return
        frame = frames.ws_frame(frames.watchlist_change(user_id, online))
        for watcher in watchers:
            watcher.push(frame)

    @staticmethod
    def _discard(index: dict[str, dict[Connection, None]], key: str, conn: Connection) -> bool:
        """Remove ``conn`` under ``key``; True when that was the last one."""
        conns = index.get(key)
        if conns is None or conn not in conns:
            return False
        del conns[conn]
        if not conns:
            del index[key]
            return True
        return False

    def terminate_user(self, app_id: str, user_id: str) -> int:
        """Close the user's connections here (4009), and on every other node of a cluster."""
        if self.replica is not None:
            self.replica.terminated(app_id, user_id)
        return self.terminate_local(app_id, user_id)

    def terminate_local(self, app_id: str, user_id: str) -> int:
        state = self.apps.get(app_id)
        conns = list(state.users.get(user_id, {})) if state else []
        for conn in conns:
            self.close(conn, c.UNAUTHORIZED, "You got disconnected by the app.")
        return len(conns)

    # -- queries for the HTTP API ------------------------------------------------------------

    def channel_state(self, app_id: str, channel: str) -> ChannelState:
        state = self.apps.get(app_id)
        found = state.channels.get(channel) if state else None
        cache: CachedEvent | None = None
        if state is not None:
            cached = state.cache.get(channel)
            now = self.clock()
            if cached is not None and cached.expires_at > now:
                cache = CachedEvent(cached.event, cached.data, int(cached.expires_at - now))
        if found is None:
            return ChannelState(False, 0, 0, cache)
        return ChannelState(True, len(found.subscribers), len(found.members), cache)

    def occupied_channels(self, app_id: str, prefix: str = "") -> dict[str, ChannelState]:
        state = self.apps.get(app_id)
        if state is None:
            return {}
        return {name: self.channel_state(app_id, name) for name in state.channels if name.startswith(prefix)}

    def presence_user_ids(self, app_id: str, channel: str) -> list[str]:
        state = self.apps.get(app_id)
        found = state.channels.get(channel) if state else None
        return list(found.members) if found else []

    # -- timers ------------------------------------------------------------------------------

    def sweep(self, now: float, pong_timeout: float) -> None:
        """Ping idle clients, close silent ones (4201) and unauthorized ones (4009), send throttled counts."""
        ping = frames.ws_frame(frames.encode("pusher:ping", "{}"))
        for state in list(self.apps.values()):
            settings = state.app.settings
            for conn in list(state.connections):
                if conn.ping_sent_at is not None:
                    if now - conn.ping_sent_at >= pong_timeout:
                        self.close(conn, c.PONG_NOT_RECEIVED, "Pong reply not received")
                        continue
                elif now - conn.last_seen >= settings.activity_timeout:
                    conn.ping_sent_at = now
                    conn.push(ping)
                if (settings.user_authentication_required and not conn.authorized
                        and now - conn.connected_at >= settings.user_authentication_timeout):
                    self.close(conn, c.UNAUTHORIZED, "Connection not authorized within timeout.")
            for channel in list(state.channels.values()):
                if channel.count_dirty and now - channel.count_sent_at >= c.SUBSCRIPTION_COUNT_INTERVAL:
                    self._send_count(state, channel, now)
            for name in [n for n, e in state.cache.items() if e.expires_at <= now]:
                del state.cache[name]

