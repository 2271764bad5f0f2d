"""The HTTP API (pusher-protocol.md §2.2): routing, authentication, validation and the handlers.

Sans-I/O: the server passes the raw method, path, query and body plus the current time, and gets back a
RestResponse. It comes in two steps so the server can apply rate limits and quotas in between without this
module knowing how they are stored:

    call = prepare(method, raw_path, raw_query, body, now, apps)   # RestResponse on any error
    if isinstance(call, RestCall):
        ... check call.app, call.is_read / call.broadcasts against limits ...
        response = execute(call, hub)

``handle`` does both steps at once. Error bodies are plain text, as hosted Pusher's are: the SDKs put the body
into the exception they raise (``PusherBadAuth: Unknown auth_key``). Every success body is JSON (``{}`` at
least), because pusher-http-python ``json.loads`` every 200 response.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol
from urllib.parse import unquote

import orjson

from vask.apps.base import App
from vask.protocol import constants as c
from vask.protocol.api import ChannelState, HubApi
from vask.protocol.channels import NAME_RE, channel_type, name_error
from vask.protocol.rest_auth import AppPathMismatch, RestAuthError, clip, verify_request
from vask.protocol.rest_events import (
    CACHE,
    SUBSCRIPTION_COUNT,
    USER_COUNT,
    BadRequest,
    EventSpec,
    parse_batch,
    parse_info,
    parse_trigger,
)

JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
PRESENCE_PREFIX = "presence-"


class AppLookup(Protocol):
    """Finds apps; an AppStore (or a cache in front of one) fits as is."""

    def get_by_id(self, app_id: str) -> App | None: ...

    def get_by_key(self, key: str) -> App | None: ...


class Operation(Enum):
    TRIGGER = "trigger"
    BATCH = "batch"
    CHANNELS = "channels"
    CHANNEL = "channel"
    USERS = "users"
    TERMINATE = "terminate"


READ_OPERATIONS = frozenset({Operation.CHANNELS, Operation.CHANNEL, Operation.USERS})


# Not frozen: a frozen dataclass's __init__ costs ~5x (object.__setattr__ per field) and one is built per request.
@dataclass(slots=True)
class RestResponse:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = (("Content-Type", JSON_TYPE),)
    broadcasts: int = 0  # events published x channels, for metering; 0 unless something was published
    app: App | None = None  # the app the request was signed for, once known

    @property
    def text(self) -> str:
        return self.body.decode()


# Not frozen: a frozen dataclass's __init__ costs ~5x (object.__setattr__ per field) and one is built per request.
@dataclass(slots=True)
class RestCall:
    """An authenticated, validated request, ready to run against the hub."""

    app: App
    operation: Operation
    events: tuple[EventSpec, ...] = ()  # TRIGGER, BATCH
    channel: str = ""  # CHANNEL, USERS
    prefix: str = ""  # CHANNELS
    info: frozenset[str] = frozenset()  # CHANNELS, CHANNEL
    user_id: str = ""  # TERMINATE
    # How many broadcasts ``execute`` will publish (one per event per channel); counted once, as every check
    # of a publish (quota, rate limit, cluster health, console) asks for it.
    broadcasts: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.broadcasts = sum(len(event.channels) for event in self.events)

    @property
    def is_read(self) -> bool:
        """A GET request: counted against the read-request rate limit, never metered."""
        return self.operation in READ_OPERATIONS


# Not frozen: a frozen dataclass's __init__ costs ~5x (object.__setattr__ per field) and one is built per request.
@dataclass(slots=True)
class _Route:
    operation: Operation
    app_id: str | None  # None for /users/{id}/terminate_connections: the app comes from auth_key
    arg: str = ""  # channel name or user id, percent-decoded


_METHODS: dict[Operation, str] = {
    Operation.TRIGGER: "POST",
    Operation.BATCH: "POST",
    Operation.CHANNELS: "GET",
    Operation.CHANNEL: "GET",
    Operation.USERS: "GET",
    Operation.TERMINATE: "POST",
}


def handle(method: str, raw_path: str, raw_query: str, body: bytes, now: float,
           apps: AppLookup, hub: HubApi) -> RestResponse:
    """Answer one HTTP API request: prepare, then execute."""
    call = prepare(method, raw_path, raw_query, body, now, apps)
    if isinstance(call, RestResponse):
        return call
    return execute(call, hub)


def prepare(method: str, raw_path: str, raw_query: str, body: bytes, now: float,
            apps: AppLookup) -> RestCall | RestResponse:
    """Route, authenticate and validate a request; an error becomes a RestResponse, nothing is published.

    ``raw_path`` is the path as received, without the query; ``raw_query`` the part after ``?`` (no ``?``).
    """
    route = _match(raw_path)
    if route is None:
        return error(404, f"Not found: {clip(raw_path)}")
    allowed = _METHODS[route.operation]
    if method != allowed:
        return error(405, f"Method {clip(method)} not allowed on {clip(raw_path)}: use {allowed}",
                     extra_headers=(("Allow", allowed),))

    try:
        signed = verify_request(method, raw_path, raw_query, body, now, apps.get_by_key, route.app_id)
    except AppPathMismatch as exc:
        # A caller that proved it holds a valid key/secret pair learns whether the id exists: a wrong app id
        # in the client's configuration then reads "Unknown app id" rather than a vague auth failure.
        if apps.get_by_id(exc.path_app_id) is None:
            return error(404, f"Unknown app id {clip(exc.path_app_id)!r}", app=exc.signed_app)
        return error(exc.status, exc.message, app=exc.signed_app)
    except RestAuthError as exc:
        return error(exc.status, exc.message)
    app = signed.app
    if not app.enabled:
        return error(403, f"App {app.id} is disabled: an operator must enable it before it can be used",
                     app=app)

    try:
        return _build(route, app, body, signed.get("filter_by_prefix"), signed.get("info"))
    except BadRequest as exc:
        return error(exc.status, exc.message, app=app)


def execute(call: RestCall, hub: HubApi) -> RestResponse:
    """Run a prepared call against the hub and build the JSON response."""
    app = call.app
    op = call.operation
    if op is Operation.TRIGGER:
        (event,) = call.events
        count = _publish(hub, app, event)
        if not event.info:
            return ok({}, app, count)
        channels = {ch: _publish_info(hub.channel_state(app.id, ch), ch, event.info) for ch in event.channels}
        return ok({"channels": channels}, app, count)
    if op is Operation.BATCH:
        count = 0
        for event in call.events:
            count += _publish(hub, app, event)
        if not any(event.info for event in call.events):
            return ok({}, app, count)
        # Attributes at index i describe the channel that event i was published to.
        results = [_publish_info(hub.channel_state(app.id, ev.channels[0]), ev.channels[0], ev.info)
                   if ev.info else {} for ev in call.events]
        return ok({"batch": results}, app, count)
    if op is Operation.CHANNELS:
        listed = hub.occupied_channels(app.id, call.prefix)
        return ok({"channels": {name: _listing_info(state, name, call.info)
                                for name, state in listed.items()}}, app)
    if op is Operation.CHANNEL:
        return ok(_channel_info(hub.channel_state(app.id, call.channel), call.info), app)
    if op is Operation.USERS:
        return ok({"users": [{"id": uid} for uid in hub.presence_user_ids(app.id, call.channel)]}, app)
    hub.terminate_user(app.id, call.user_id)
    return ok({}, app)


def ok(payload: dict[str, Any], app: App | None = None, broadcasts: int = 0) -> RestResponse:
    return RestResponse(200, orjson.dumps(payload), broadcasts=broadcasts, app=app)


def error(status: int, message: str, app: App | None = None,
          extra_headers: tuple[tuple[str, str], ...] = ()) -> RestResponse:
    return RestResponse(status, message.encode(), (("Content-Type", TEXT_TYPE), *extra_headers), app=app)


def _match(raw_path: str) -> _Route | None:
    parts = raw_path.split("/")
    if parts[0] != "" or any(part == "" for part in parts[1:]):
        return None  # relative, trailing slash or empty segment
    parts = [unquote(part) for part in parts[1:]] if "%" in raw_path else parts[1:]
    n = len(parts)
    if parts[0] == "users":
        # pusher-http-python posts terminate_user_connections here, without /apps/{app_id}.
        if n == 3 and parts[2] == "terminate_connections":
            return _Route(Operation.TERMINATE, None, parts[1])
        return None
    if parts[0] != "apps" or n < 3:
        return None
    app_id, rest = parts[1], parts[2:]
    if rest == ["events"]:
        return _Route(Operation.TRIGGER, app_id)
    if rest == ["batch_events"]:
        return _Route(Operation.BATCH, app_id)
    if rest == ["channels"]:
        return _Route(Operation.CHANNELS, app_id)
    if rest[0] == "channels" and len(rest) == 2:
        return _Route(Operation.CHANNEL, app_id, rest[1])
    if rest[0] == "channels" and len(rest) == 3 and rest[2] == "users":
        return _Route(Operation.USERS, app_id, rest[1])
    if rest[0] == "users" and len(rest) == 3 and rest[2] == "terminate_connections":
        return _Route(Operation.TERMINATE, app_id, rest[1])
    return None


def _build(route: _Route, app: App, body: bytes, prefix: str | None, raw_info: str | None) -> RestCall:
    op = route.operation
    settings = app.settings
    if op is Operation.TRIGGER:
        return RestCall(app, op, events=(parse_trigger(body, settings),))
    if op is Operation.BATCH:
        return RestCall(app, op, events=parse_batch(body, settings))
    if op is Operation.CHANNELS:
        info = parse_info(raw_info, frozenset({USER_COUNT, SUBSCRIPTION_COUNT}))
        prefix = prefix or ""
        if USER_COUNT in info and not prefix.startswith(PRESENCE_PREFIX):
            raise BadRequest("info=user_count is only available for presence channels: "
                             "add filter_by_prefix=presence-")
        return RestCall(app, op, prefix=prefix, info=info)
    if op is Operation.TERMINATE:
        return RestCall(app, op, user_id=_user_id(route.arg))

    channel = route.arg
    problem = name_error(channel, settings.max_channel_name_length)
    if problem is not None:
        raise BadRequest(problem)
    kind = channel_type(channel)
    if op is Operation.USERS:
        if not kind.is_presence:
            raise BadRequest(f"Users can only be listed for presence channels, not {channel!r}")
        return RestCall(app, op, channel=channel)
    info = parse_info(raw_info, frozenset({USER_COUNT, SUBSCRIPTION_COUNT, CACHE}))
    if USER_COUNT in info and not kind.is_presence:
        raise BadRequest(f"info=user_count is only available for presence channels, not {channel!r}")
    if SUBSCRIPTION_COUNT in info and kind.is_presence:
        raise BadRequest(f"info=subscription_count is not available for presence channels ({channel!r}): "
                         "use user_count")
    if CACHE in info and not kind.cache:
        raise BadRequest(f"info=cache is only available for cache channels, not {channel!r}")
    return RestCall(app, op, channel=channel, info=info)


def _user_id(user_id: str) -> str:
    if not user_id or len(user_id) > c.MAX_USER_ID_LENGTH or not NAME_RE.match(user_id):
        raise BadRequest(f"Invalid user id {clip(user_id)!r}: 1 to {c.MAX_USER_ID_LENGTH} letters, digits "
                         "or _ - = @ , . ;")
    return user_id


def _publish(hub: HubApi, app: App, event: EventSpec) -> int:
    for channel in event.channels:
        hub.publish(app, channel, event.name, event.data, event.socket_id)
    return len(event.channels)


def _publish_info(state: ChannelState, channel: str, info: frozenset[str]) -> dict[str, int]:
    """Attributes after a publish. As in Pusher's documented example, user_count is given for presence
    channels only and subscription_count for every channel (no error: one request may mix channel types)."""
    attrs: dict[str, int] = {}
    if USER_COUNT in info and channel_type(channel).is_presence:
        attrs[USER_COUNT] = state.user_count
    if SUBSCRIPTION_COUNT in info:
        attrs[SUBSCRIPTION_COUNT] = state.subscription_count
    return attrs


def _listing_info(state: ChannelState, channel: str, info: frozenset[str]) -> dict[str, int]:
    # Without info Pusher returns an empty hash per channel.
    return _publish_info(state, channel, info)


def _channel_info(state: ChannelState, info: frozenset[str]) -> dict[str, Any]:
    # Requested attributes are reported even for an unoccupied channel (zero counts), so a client reading
    # info["subscription_count"] does not fail; a cache channel keeps its cache after its last subscriber.
    result: dict[str, Any] = {"occupied": state.occupied}
    if USER_COUNT in info:
        result[USER_COUNT] = state.user_count
    if SUBSCRIPTION_COUNT in info:
        result[SUBSCRIPTION_COUNT] = state.subscription_count
    if CACHE in info:
        cached = state.cache
        result[CACHE] = None if cached is None else {"data": cached.data, "ttl": cached.ttl}
    return result
