"""Plain HTTP requests: health endpoints and the HTTP API, with per-app rate limits.

The HTTP API logic lives in ``vask.protocol.rest``; this module feeds it apps from the cache.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson

from vask.apps.base import App
from vask.cluster.store import StoreUnavailable
from vask.console.emit import REFUSED_STATUSES, api_messages, http_refused, reason_of
from vask.protocol import rest
from vask.protocol.rest_auth import parse_query
from vask.server import cors, health
from vask.server.appcache import AppStoreUnavailable
from vask.server.messages import OK, HttpRequest, Response

if TYPE_CHECKING:
    from vask.server.node import ServerState


HEALTH = {"/", "/up", "/live"}
HEALTH_PATHS = HEALTH | {"/ready", "/accept-traffic", "/usage"}


def _health(state: ServerState, path: str) -> Response:
    """/, /up, /live: the process answers. The others are explained in vask.server.health."""
    if path in HEALTH:
        return OK
    if path == "/ready":
        problem = health.not_ready(state)
    elif path == "/accept-traffic":
        problem = health.refuse_traffic(state)
    else:
        return Response(200, orjson.dumps(health.usage()))
    return OK if problem is None else Response.error(503, problem)


class _CachedApps:
    """AppLookup over the cache; ``respond`` only calls it once the needed entries are warm."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def get_by_id(self, app_id: str) -> App | None:
        return self.state.apps.known_by_id(app_id)

    def get_by_key(self, key: str) -> App | None:
        return self.state.apps.known_by_key(key)


def _needed(request: HttpRequest) -> tuple[str | None, str | None]:
    """(app id from the path, auth_key from the query) that the request will look up."""
    app_id = None
    if request.path.startswith("/apps/"):
        app_id = request.path[6:].split("/", 1)[0] or None
    key = next((value for name, value in parse_query(request.query) if name == "auth_key"), None)
    return app_id, key


def _warm(state: ServerState, request: HttpRequest) -> bool:
    app_id, key = _needed(request)
    return (app_id is None or state.apps.cached_by_id(app_id)[0]) and (
        key is None or state.apps.cached_by_key(key)[0])


@dataclass(frozen=True, slots=True)
class LoadApps:
    """The request's apps are not cached: load them, then check the request."""


@dataclass(frozen=True, slots=True)
class NeedsView:
    """A call already prepared, verified and charged, whose answer needs the cluster's shared state."""

    call: rest.RestCall


# What ``respond`` leaves to ``respond_async``, which goes on from it and never starts over: each request is
# prepared, quota-checked and charged once.
Deferred = LoadApps | NeedsView
LOAD_APPS = LoadApps()


def respond(state: ServerState, request: HttpRequest) -> Response | Deferred:
    """The response, or what must be awaited first: hand it to ``respond_async``."""
    origins = cors.allowed_origins(state.settings.cors_origins)
    if not origins:
        return _respond(state, request)
    allowed = cors.preflight(origins, request)
    if allowed is not None:
        return Response(204, b"", "text/plain; charset=utf-8", allowed)
    response = _respond(state, request)
    return _with_cors(origins, request, response) if isinstance(response, Response) else response


async def respond_async(state: ServerState, request: HttpRequest, deferred: Deferred) -> Response:
    response = await _respond_async(state, request, deferred)
    origins = cors.allowed_origins(state.settings.cors_origins)
    return _with_cors(origins, request, response) if origins else response


def _with_cors(origins: frozenset[str], request: HttpRequest, response: Response) -> Response:
    extra = cors.headers(origins, request)
    return dataclasses.replace(response, headers=response.headers + extra) if extra else response


def _respond(state: ServerState, request: HttpRequest) -> Response | Deferred:
    path = request.path
    if request.method in ("GET", "HEAD") and path in HEALTH_PATHS:
        return _health(state, path)
    if not _warm(state, request):
        return LOAD_APPS
    return _checked(state, request)


def _checked(state: ServerState, request: HttpRequest) -> Response | NeedsView:
    """Prepare, check the quota, charge the rate limit, then run the call or hand it on for a cluster view."""
    path = request.path
    call = rest.prepare(request.method, path, request.query, request.body, time.time(), _CachedApps(state))
    if isinstance(call, rest.RestResponse):
        if call.status in REFUSED_STATUSES:
            app_id = call.app.id if call.app is not None else _needed(request)[0]
            http_refused(state.hub.console, app_id, request.method, path, call.status, reason_of(call.body))
        return _convert(call)
    if call.broadcasts:
        # Over a hard monthly quota: 403, the status Pusher documents for "over message quota". Checked in
        # memory (vask.billing.meter), before the rate limits so a refused request spends no rate tokens.
        refused = state.hub.observer.refuse_broadcasts(call.app, call.broadcasts)
        if refused is not None:
            http_refused(state.hub.console, call.app.id, request.method, path, 403, refused)
            return Response.error(403, refused)
    limited = state.limits.check(call)
    if limited is not None:
        http_refused(state.hub.console, call.app.id, request.method, path, 429, reason_of(limited.body))
        return limited
    cluster = state.cluster
    if cluster is not None:
        if call.broadcasts and not cluster.healthy:
            # Refused rather than delivered to this node only: the caller can retry without duplicates.
            cluster.stats.publishes_refused += 1
            return Response.error(503, "Broker unavailable: the event was not published, retry shortly")
        if cluster.needs_view(call):
            return NeedsView(call)  # cluster-wide answers are read from the shared store: see respond_async
    return _executed(state, call, rest.execute(call, state.hub))


async def _respond_async(state: ServerState, request: HttpRequest, deferred: Deferred) -> Response:
    if isinstance(deferred, LoadApps):
        app_id, key = _needed(request)
        try:
            if app_id is not None:
                await state.apps.by_id(app_id)
            if key is not None:
                await state.apps.by_key(key)
        except AppStoreUnavailable:
            return Response.error(503, "App store unavailable: retry shortly")
        if not _warm(state, request):
            # The cache entries were just filled; a miss here means the TTL is shorter than a store round trip.
            return Response.error(503, "App store too slow, retry")
        checked = _checked(state, request)
        if isinstance(checked, Response):
            return checked
        deferred = checked
    # A cluster node: the checked call runs against a view of the shared state.
    assert state.cluster is not None
    try:
        view = await state.cluster.view_for(deferred.call)
    except StoreUnavailable:
        return Response.error(503, "Shared state unavailable: retry shortly")
    return _executed(state, deferred.call, rest.execute(deferred.call, view))


def _executed(state: ServerState, call: rest.RestCall, response: rest.RestResponse) -> Response:
    if call.broadcasts and state.hub.console.watching(call.app.id):
        api_messages(state.hub.console, call)
    return _convert(response)


def _convert(response: rest.RestResponse) -> Response:
    content_type = "application/json"
    extra = []
    for name, value in response.headers:
        if name.lower() == "content-type":
            content_type = value
        else:
            extra.append((name, value))
    return Response(response.status, response.body, content_type, tuple(extra))
