"""What to do with each frame a client sends (pusher-protocol.md §1.4). No I/O, no clock of its own."""

from __future__ import annotations

from typing import Any

import orjson

from vask.console import logs
from vask.core.connection import Connection
from vask.core.hub import Hub
from vask.protocol import auth, frames
from vask.protocol import constants as c
from vask.protocol.channels import NAME_RE, Kind, channel_type, name_error, user_channel_owner


def handle(hub: Hub, conn: Connection, payload: bytes, now: float) -> None:
    """Handle one text frame. Bad input gets a pusher:error frame; the connection stays open."""
    if conn.closing:
        return  # frames that arrive after we closed must not re-add a released connection anywhere
    conn.last_seen = now
    conn.ping_sent_at = None
    try:
        message = frames.decode(payload)
    except frames.BadMessage as exc:
        error(hub, conn, None, str(exc))
        return
    event = message.event
    if event.startswith("client-"):
        client_event(hub, conn, message, now)
    elif event == "pusher:ping":
        conn.send(frames.encode("pusher:pong", "{}"))
    elif event == "pusher:pong":
        pass
    elif event == "pusher:subscribe":
        subscribe(hub, conn, message.data)
    elif event == "pusher:unsubscribe":
        data = frames.data_object(message.data)
        name = data.get("channel") if data else None
        if isinstance(name, str):
            hub.unsubscribe(conn, name)
        else:
            error(hub, conn, None, "pusher:unsubscribe needs data.channel, the channel name")
    elif event == "pusher:signin":
        signin(hub, conn, message.data)
    else:
        error(hub, conn, None, f"Unsupported event {event!r}: clients may send pusher:subscribe, "
                          "pusher:unsubscribe, pusher:signin, pusher:ping, pusher:pong and client-* events")


def error(hub: Hub, conn: Connection, code: int | None, message: str, channel: str | None = None,
          status: int = 401) -> None:
    """A pusher:error frame; for a refused subscription also a pusher:subscription_error on the channel
    (not a Pusher frame, but pusher-js routes it to that channel's handlers, and Laravel Echo's .error())."""
    conn.send(frames.encode_error(code, message))
    if hub.console.watching(conn.app.id):
        hub.console.note(conn.app.id, "error", channel, conn.socket_id, code=code, message=message,
                         status=status if channel is not None else None)
    if channel is not None:
        kind = "AuthError" if status in (401, 403) else "SubscriptionError"
        conn.send(frames.encode("pusher:subscription_error", {"type": kind, "error": message,
                                                               "status": status}, channel))


def subscribe(hub: Hub, conn: Connection, raw: Any) -> None:
    data = frames.data_object(raw)
    name = data.get("channel") if data else None
    if data is None or not isinstance(name, str):
        error(hub, conn, None, "pusher:subscribe needs data.channel, the channel name")
        return
    settings = conn.app.settings
    problem = name_error(name, settings.max_channel_name_length)
    if problem:
        error(hub, conn, None, problem, name, status=400)
        return
    if name in conn.subscriptions:
        error(hub, conn, None, f"Existing subscription to channel {name}")
        return
    kind = channel_type(name)
    channel_data = data.get("channel_data")
    if channel_data is not None and not isinstance(channel_data, str):
        error(hub, conn, None, f"channel_data must be the JSON string that was signed, for {name}", name, status=400)
        return
    if kind.kind is Kind.USER:
        if conn.user_id is None or user_channel_owner(name) != conn.user_id:
            error(hub, conn, c.UNAUTHORIZED, f"Only the signed-in user may subscribe to {name}", name, status=403)
            return
    elif kind.needs_auth:
        if not data.get("auth"):
            error(hub, conn, None, f"Auth info required to subscribe to {name}", name)
            return
        message = auth.channel_string(conn.socket_id, name, channel_data)
        problem = auth.check_auth(conn.app.key, conn.app.secret, message, data.get("auth"))
        if problem:
            logs.refused("subscription", problem, app_id=conn.app.id, socket_id=conn.socket_id, channel=name)
            error(hub, conn, None, problem, name)
            return
    user_id: str | None = None
    user_info: Any = None
    if kind.is_presence:
        member = presence_member(conn, name, channel_data)
        if isinstance(member, str):
            error(hub, conn, None, member, name, status=400)
            return
        user_id, user_info = member
    if not hub.subscribe(conn, name, user_id, user_info):
        error(hub, conn, c.OVER_CAPACITY, f"Presence channel {name} is full: at most "
                                     f"{settings.max_presence_members} members", name, status=403)


def presence_member(conn: Connection, name: str, channel_data: str | None) -> tuple[str, Any] | str:
    """The (user_id, user_info) a presence subscription joins as, or the error text."""
    settings = conn.app.settings
    if channel_data is None:
        # pusher-js 8 omits channel_data when the connection is signed in: the member is that user.
        if conn.user_id is None or conn.user_data is None:
            return f"channel_data required to subscribe to presence channel {name} (or sign in first)"
        # The signed-in user is held to the same presence limits as channel_data (sign-in ids may be longer).
        user_id, info = conn.user_id, conn.user_data.get("user_info")
    else:
        try:
            parsed = orjson.loads(channel_data)
        except orjson.JSONDecodeError:
            return f"Invalid channel_data for {name}: not JSON"
        if not isinstance(parsed, dict) or "user_id" not in parsed:
            return f"Invalid channel_data for {name}: expected an object with user_id"
        raw_id = parsed["user_id"]
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
            return f"Invalid channel_data for {name}: user_id must be a non-empty string or number"
        user_id, info = str(raw_id), parsed.get("user_info")
    if len(user_id) > settings.max_presence_user_id_length:
        return f"Presence user_id too long: at most {settings.max_presence_user_id_length} characters"
    if info is not None and len(orjson.dumps(info)) > settings.max_presence_user_info_bytes:
        return f"Presence user_info too large: at most {settings.max_presence_user_info_bytes} bytes"
    return user_id, info


def client_event(hub: Hub, conn: Connection, message: frames.ClientMessage, now: float) -> None:
    settings = conn.app.settings
    name = message.channel
    if not settings.client_events:
        error(hub, conn, c.CLIENT_EVENT_RATE_LIMIT, "Client events are not enabled for this app")
        return
    if name is None or name not in conn.subscriptions:
        error(hub, conn, None, f"Client event {message.event} rejected: subscribe to {name} first")
        return
    state = hub.state(conn.app)
    channel = state.channels.get(name)
    if channel is None or not channel.type.allows_client_events:
        error(hub, conn, None, f"Client events are only allowed on private and presence channels, not {name}")
        return
    if len(message.event) > settings.max_event_name_length:
        error(hub, conn, None, f"Event name too long: at most {settings.max_event_name_length} characters")
        return
    # Bytes, as the HTTP API counts them: a string of multi-byte characters is larger than its length.
    size = len(message.data.encode()) if isinstance(message.data, str) else len(orjson.dumps(message.data))
    if size > settings.max_event_data_bytes:
        error(hub, conn, None, f"Client event data too large: {size} bytes, the limit is "
                          f"{settings.max_event_data_bytes}")
        return
    if not conn.take_token(now):
        error(hub, conn, c.CLIENT_EVENT_RATE_LIMIT, f"Client event rejected: more than "
                                               f"{settings.max_client_events_per_second} per second")
        return
    refused = hub.observer.refuse_broadcasts(conn.app, 1)  # a client event is one broadcast
    if refused is not None:
        logs.refused("client event", refused, app_id=conn.app.id, code=c.CLIENT_EVENT_RATE_LIMIT,
                     socket_id=conn.socket_id, channel=name)
        error(hub, conn, c.CLIENT_EVENT_RATE_LIMIT, f"Client event rejected: {refused}")
        return
    user_id = conn.subscriptions[name].user_id if channel.type.is_presence else None
    hub.client_event(conn, channel, message.event, message.data, user_id)


def signin(hub: Hub, conn: Connection, raw: Any) -> None:
    data = frames.data_object(raw)
    user_data = data.get("user_data") if data else None
    if data is None or not isinstance(user_data, str):
        hub.close(conn, c.UNAUTHORIZED, "pusher:signin needs data.auth and data.user_data (a JSON string)")
        return
    problem = auth.check_auth(conn.app.key, conn.app.secret, auth.signin_string(conn.socket_id, user_data),
                              data.get("auth"))
    if problem:
        logs.refused("signin", problem, app_id=conn.app.id, code=c.UNAUTHORIZED, socket_id=conn.socket_id)
        hub.close(conn, c.UNAUTHORIZED, problem)
        return
    try:
        parsed = orjson.loads(user_data)
    except orjson.JSONDecodeError:
        parsed = None
    user_id = parsed.get("id") if isinstance(parsed, dict) else None
    if not isinstance(user_id, str) or not user_id or len(user_id) > c.MAX_USER_ID_LENGTH \
            or not NAME_RE.match(user_id):
        hub.close(conn, c.UNAUTHORIZED, "Invalid user_data: id must be a non-empty string of letters, "
                                        "digits and _ - = @ , . ;")
        return
    assert isinstance(parsed, dict)
    if conn.user_id is not None and conn.user_id != user_id:
        hub.close(conn, c.UNAUTHORIZED, f"Connection is already signed in as {conn.user_id}")
        return
    watchlist = parsed.get("watchlist") or []
    if not isinstance(watchlist, list):
        watchlist = []
    ids = [str(w) for w in watchlist if isinstance(w, str | int) and not isinstance(w, bool)]
    conn.send(frames.encode_internal("pusher:signin_success", {"user_data": user_data}))
    if conn.user_id is None:
        hub.sign_in(conn, user_id, parsed, ids[: c.MAX_WATCHLIST])
    if len(ids) > c.MAX_WATCHLIST:
        error(hub, conn, c.WATCHLIST_LIMIT, f"Watchlist limit exceeded: only the first {c.MAX_WATCHLIST} user ids "
                                       "are watched")
