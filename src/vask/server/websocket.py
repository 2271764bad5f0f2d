"""The WebSocket side of a connection: the handshake, Pusher's opening checks, and the messages received."""

from __future__ import annotations

import codecs
import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.server import ServerProtocol

from vask.apps.base import App
from vask.core import session
from vask.core.connection import Connection
from vask.protocol import constants as c
from vask.protocol import frames
from vask.server.wsframes import BINARY, CONT, INVALID_DATA, TEXT, ServerFrames

if TYPE_CHECKING:
    from vask.server.node import HttpPeer, ServerState
    from vask.server.xhr_session import XhrSession

log = logging.getLogger("vask.ws")
_utf8_decoder = codecs.getincrementaldecoder("utf-8")


def handshake(path: str, headers: list[tuple[str, str]], max_size: int) -> tuple[bytes, ServerFrames | None]:
    """Validate an unusual upgrade request with websockets; return the HTTP response bytes and, on success,
    the frame codec."""
    shaker = ServerProtocol(max_size=max_size)
    response = shaker.accept(Request(path, Headers(headers)))
    shaker.send_response(response)
    raw = b"".join(shaker.data_to_send())
    if response.status_code != 101:
        return raw, None
    return raw, ServerFrames(max_size)


def opening_error(query: str, state: ServerState) -> tuple[int, str] | None:
    """Checks that need no app: protocol version, shutdown, node capacity."""
    versions = _protocol_versions(query)
    if versions:
        try:
            version = int(versions[0])
        except ValueError:
            return c.UNSUPPORTED_PROTOCOL, f"Unsupported protocol version {versions[0]!r}: use 5 to 7"
        if not c.MIN_PROTOCOL <= version <= c.MAX_PROTOCOL:
            return c.UNSUPPORTED_PROTOCOL, f"Unsupported protocol version {version}: use 5 to 7"
    if state.shutting_down:
        return c.RECONNECT, "Server is shutting down. Please reconnect shortly."
    limit = state.settings.max_connections
    if limit is not None and state.hub.connection_count >= limit:
        return c.OVER_CAPACITY, "Over capacity: this server has reached its connection limit"
    return None


def _protocol_versions(query: str) -> list[str] | None:
    """parse_qs(query).get("protocol"), without parse_qs for the plain queries pusher-js sends."""
    if "%" in query or "+" in query:
        return parse_qs(query).get("protocol")
    found = [part[9:] for part in query.split("&") if part.startswith("protocol=") and len(part) > 9]
    return found or None


def app_error(key: str, app: App | None, state: ServerState) -> tuple[int, str] | None:
    if app is None:
        return c.APP_NOT_FOUND, f"App key {key} does not exist."
    if not app.enabled:
        return c.APP_DISABLED, "Application disabled"
    limit = app.settings.max_connections
    if limit is not None and state.hub.app_connections(app.id) >= limit:
        return c.APP_OVER_QUOTA, "Application is over connection quota"
    if state.meter is not None:
        # The account's plan limits its concurrent connections summed over all of its apps.
        refused = state.meter.connection_refusal(app)
        if refused is not None:
            return c.APP_OVER_QUOTA, refused
    return None


def establish(proto: HttpPeer | XhrSession, app: App, state: ServerState,
              origin: str | None = None) -> Connection:
    now = state.clock()
    conn = Connection(app, proto, state.flusher, now, state.settings.max_outbox_bytes)
    hub = state.hub
    hub.add(conn)
    if state.stats is not None:  # the minute's peak (vask.console.stats)
        state.stats.connections(app.id, hub.app_connections(app.id))
    if hub.console.watching(app.id):
        hub.console.note(app.id, "connection", None, conn.socket_id, origin=origin)
    state.metrics.opened(app.id)
    if state.meter is not None:
        # Counted only once accepted (a refused connection never is); the protocol releases it on close.
        proto.metered = state.meter.connection_opened(app)
    conn.send(frames.encode_internal("pusher:connection_established", {
        "socket_id": conn.socket_id, "activity_timeout": app.settings.activity_timeout}))
    return conn


def receive(proto: HttpPeer, ws: ServerFrames, data: bytes, state: ServerState) -> None:
    """Feed bytes to the frame parser and act on every complete frame."""
    ws.receive_data(data)
    conn = proto.conn
    if conn is not None:
        conn.recv_bytes += len(data)
    for frame in ws.events_received():
        if conn is None or conn.closing:
            continue
        opcode = frame.opcode
        # The codec checks the sequence (a CONT always continues a started message), so a CONT frame belongs to
        # the text message in progress when there is a decoder, else to a binary one.
        if opcode == TEXT or (opcode == CONT and proto.utf8 is not None):
            if opcode == TEXT:
                proto.utf8 = _utf8_decoder()
            try:  # incrementally, so a bad sequence fails at once, not at the end of a long message
                proto.utf8.decode(frame.data, final=frame.fin)
            except UnicodeDecodeError:
                proto.fragments.clear()
                proto.utf8 = None
                state.hub.close(conn, INVALID_DATA, "Invalid UTF-8 in a text message")
                continue
            # No size check here: the codec bounds the whole message by max_ws_frame_bytes (close 1009).
            proto.fragments.append(bytes(frame.data))
            if frame.fin:
                conn.recv_frames += 1
                payload = b"".join(proto.fragments)
                proto.fragments.clear()
                proto.utf8 = None
                try:
                    session.handle(state.hub, conn, payload, state.clock())
                except RecursionError:
                    session.error(state.hub, conn, None, "Invalid message: nested too deeply")
                except Exception:  # a bug must cost one message, not the connection or the process
                    log.exception("error handling a message from %s", conn.socket_id)
                    session.error(state.hub, conn, None, "Internal server error while handling this message")
        elif opcode in (BINARY, CONT):
            if frame.fin:
                session.error(state.hub, conn, None, "Binary frames are not supported: send JSON text frames")
        else:  # ping, pong, close: the codec answers pings itself; each proves the client is alive
            conn.last_seen = state.clock()
            conn.ping_sent_at = None
    proto.send_ws_output()
    if conn is not None and not conn.closing:
        # A started frame or message must complete within ws_frame_timeout, counted from its first byte.
        if ws.pending or proto.utf8 is not None:
            if proto.timer is None:
                proto.arm_frame_timer()
        elif proto.timer is not None:
            proto.disarm()
