"""pusher-js' HTTP fallback transports on the Pusher port: receive requests, xhr_send, CORS.

A receive request for a session id nobody uses yet opens a Pusher connection exactly as a WebSocket upgrade
does (the same opening checks, ``websocket.establish``, the same refusal codes, sent as ``a[pusher:error]`` and
``c[code,reason]``). See ``vask.protocol.sockjs`` for the wire format and ``xhr_session`` for the session.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vask.apps.base import App
from vask.core import session as pusher_session
from vask.protocol import constants as c
from vask.protocol import frames, sockjs
from vask.server import websocket
from vask.server.messages import Headers, Response
from vask.server.xhr_session import STREAM_TYPE, Receiver, XhrSession
from vask.tasks import spawn

if TYPE_CHECKING:
    from vask.server.messages import HttpRequest
    from vask.server.node import HttpPeer, ServerState

log = logging.getLogger("vask.xhr")


def cors_headers(request: HttpRequest) -> Headers:
    """pusher-js calls from the page's origin, usually not Vask's: allow it (the app key is public anyway;
    private data needs a channel signature from the app's own auth endpoint)."""
    origin = next((v for n, v in request.headers if n.lower() == "origin"), None)
    if origin is None or origin == "null":
        return (("Access-Control-Allow-Origin", "*"),)
    return (("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"),
            ("Vary", "Origin"))


def _error(status: int, message: str, cors: Headers) -> Response:
    return Response(status, message.encode(), "text/plain; charset=utf-8", cors)


def handle(proto: HttpPeer, request: HttpRequest) -> Response | None:
    """The response now, or None when the request is held (a stream, a long poll, an app look-up)."""
    cors = cors_headers(request)
    if request.method == "OPTIONS":  # the CORS preflight: pusher-js posts with Content-Type: application/json
        asked = next((v for n, v in request.headers if n.lower() == "access-control-request-headers"), None)
        return Response(204, b"", "text/plain; charset=utf-8", (
            *cors, ("Access-Control-Allow-Methods", "OPTIONS, POST"),
            ("Access-Control-Allow-Headers", asked or "Content-Type"), ("Access-Control-Max-Age", "86400"),
            ("Cache-Control", "public, max-age=86400")))
    try:
        target = sockjs.parse_path(request.path)
    except sockjs.BadPath as exc:
        return _error(404, str(exc), cors)
    if request.method != "POST":
        return Response(405, f"Method {request.method} not allowed: pusher-js' HTTP transports use POST".encode(),
                        "text/plain; charset=utf-8", (*cors, ("Allow", "OPTIONS, POST")))
    state = proto.state
    session_key = f"{target.key}/{target.session}"
    found = state.http_sessions.get(session_key)
    if target.kind == "xhr_send":
        if found is None:
            return _error(404, "Session not found: it expired or was never opened (open it with .../xhr_streaming "
                               "or .../xhr first)", cors)
        return _send(found, request, cors)
    streaming = target.kind == "xhr_streaming"
    if found is not None:
        _attach(proto, found, request, streaming, cors)
        return None
    problem = websocket.opening_error(request.query, state)
    if problem is not None:
        return _refusal(*problem, cors)
    hit, app = state.apps.cached_by_key(target.key)
    if hit:
        return _open(proto, request, session_key, app, streaming, cors)
    proto.hold()
    spawn(_open_later(proto, request, target, session_key, streaming, cors), f"open HTTP session {session_key[:80]}")
    return None


async def _open_later(proto: HttpPeer, request: HttpRequest, target: sockjs.Target, session_key: str,
                      streaming: bool, cors: Headers) -> None:
    try:
        app = await proto.state.apps.by_key(target.key)
    except Exception:
        log.exception("app look-up failed for an HTTP transport session")
        proto.release(_error(503, "App store unavailable, retry", cors), request.keep_alive)
        return
    if proto.transport is None or proto.transport.is_closing():
        return
    try:
        response = _open(proto, request, session_key, app, streaming, cors)
    except Exception:
        log.exception("error opening an HTTP transport session")
        response = _error(500, "Internal server error", cors)
    if response is not None:
        proto.release(response, request.keep_alive)


def _open(proto: HttpPeer, request: HttpRequest, session_key: str, app: App | None, streaming: bool,
          cors: Headers) -> Response | None:
    state = proto.state
    found = state.http_sessions.get(session_key)
    if found is not None:  # opened by another request while the app was looked up
        _attach(proto, found, request, streaming, cors)
        return None
    problem = websocket.app_error(session_key.split("/", 1)[0], app, state)
    if problem is not None:
        return _refusal(*problem, cors)
    assert app is not None
    now = state.clock()
    session = XhrSession(session_key, state, now)
    state.http_sessions[session_key] = session
    # Only gathered while a console is open (vask.console), as for a WebSocket.
    origin = next((v for n, v in request.headers if n.lower() == "origin"), None) if state.hub.console.active else None
    session.conn = websocket.establish(session, app, state, origin)
    if not streaming:
        return Response(200, sockjs.OPEN, STREAM_TYPE, cors)  # a poll's first answer is the open line alone
    receiver = _receiver(proto, request, True, cors)
    proto.hold(receiver)
    session.attach(receiver, now, opening=True)
    return None


def _receiver(proto: HttpPeer, request: HttpRequest, streaming: bool, cors: Headers) -> Receiver:
    return Receiver(proto, streaming, request.keep_alive, request.version != "1.0", cors, proto.state.clock())


def _attach(proto: HttpPeer, session: XhrSession, request: HttpRequest, streaming: bool, cors: Headers) -> None:
    receiver = _receiver(proto, request, streaming, cors)
    if streaming:
        log.debug("stream resumed for session %s (%s)", session.id,
                  session.conn.socket_id if session.conn else "closed")
    proto.hold(receiver)
    session.attach(receiver, proto.state.clock())


def _refusal(code: int, reason: str, cors: Headers) -> Response:
    """A refused connection as pusher-js reads it from a WebSocket: the pusher:error frame, then the close code."""
    body = sockjs.OPEN + sockjs.array_frame([frames.encode_error(code, reason)]) + sockjs.close_frame(code, reason)
    return Response(200, body, STREAM_TYPE, cors)


def _send(session: XhrSession, request: HttpRequest, cors: Headers) -> Response:
    """Client frames (pusher-js posts one per request; ``[]`` is its heartbeat), handled as WebSocket frames."""
    state = session.state
    conn = session.conn
    if conn is None or session.closed is not None or conn.closing:
        return _error(404, "Session closed: connect again", cors)
    number = sockjs.request_number(request.query)
    if number is None:
        return _error(400, "xhr_send needs the n= request counter that pusher-js adds to the URL", cors)
    limit = state.settings.max_ws_frame_bytes
    if len(request.body) > 2 * limit + 16:
        state.hub.close(conn, c.RECONNECT, "Message too large")
        return _error(413, f"xhr_send body too large: a message may be at most {limit} bytes", cors)
    try:
        messages = sockjs.parse_send(request.body)
    except sockjs.BadSend as exc:
        return _error(400, str(exc), cors)
    refused = session.accept_send(number)
    if refused is not None:
        return _error(409, refused, cors)
    now = state.clock()
    conn.last_seen = now
    conn.ping_sent_at = None
    for message in messages:
        payload = message.encode()
        if len(payload) > limit:
            state.hub.close(conn, c.RECONNECT, "Message too large")
            return _error(413, f"Message too large: at most {limit} bytes", cors)
        try:
            pusher_session.handle(state.hub, conn, payload, now)
        except RecursionError:
            pusher_session.error(state.hub, conn, None, "Invalid message: nested too deeply")
        except Exception:  # a bug must cost one message, not the session or the process
            log.exception("error handling a message from %s", conn.socket_id)
            pusher_session.error(state.hub, conn, None, "Internal server error while handling this message")
        if conn.closing:
            break
    return Response(204, b"", "text/plain; charset=utf-8", cors)


def receivers(state: ServerState) -> int:
    """Receive requests held open now (for tests and metrics)."""
    return sum(1 for s in state.http_sessions.values() if s.receiver is not None)
