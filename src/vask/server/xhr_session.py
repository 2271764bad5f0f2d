"""An HTTP fallback session (pusher-js' xhr_streaming / xhr_polling): a ``Peer`` like a WebSocket's.

The session owns an ordinary ``Connection`` (same socket id, hub entry, outbox bound and close rules); only the
framing differs. What the hub queues for it (pre-framed WebSocket bytes) is unwrapped and sent as ``a[...]``
lines on the receive request that is attached at the moment, or kept until the next one arrives. Kept bytes
count toward the connection's outbox bound, so a poller that stops polling is closed with 4100 like a WebSocket
that stops reading.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from vask.config import Settings
from vask.core.connection import Connection
from vask.core.hub import Hub
from vask.protocol import sockjs
from vask.server.messages import Response

if TYPE_CHECKING:
    from vask.billing.meter import Meter


class Writer(Protocol):
    """The HTTP connection a receive request is held on (vask.server.http.HttpProtocol)."""
    transport: asyncio.Transport | None

    def write_raw(self, data: bytes) -> None: ...

    def release(self, response: Response | None, keep_alive: bool) -> None: ...


class SessionHost(Protocol):
    """What a session needs of the server process (vask.server.node.ServerState)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def hub(self) -> Hub: ...

    @property
    def meter(self) -> Meter | None: ...

    @property
    def http_sessions(self) -> dict[str, XhrSession]: ...

    @property
    def clock(self) -> Callable[[], float]: ...


# pusher-js starts a new stream once its response text passed 256 KiB and every line in it was read
# (http_request.ts, MAX_BUFFER_LENGTH); what is written after that point would be lost with the old request, so
# a stream stops at that length and keeps the rest for the next one.
STREAM_LIMIT = 256 * 1024
SEND_WINDOW = 32  # xhr_send request numbers remembered per session, to refuse replays
STREAM_TYPE = "application/javascript; charset=UTF-8"


Encoded = tuple[bytes, bytes, int]  # the a[...] line, the same as an HTTP/1.1 chunk, its length in UTF-16 units
_last: tuple[bytes, Encoded] = (b"", (b"", b"", 0))


def text_length(data: bytes) -> int:
    """The length pusher-js sees (JavaScript strings count UTF-16 units)."""
    return len(data) if data.isascii() else len(data.decode().encode("utf-16-le")) // 2


def encode(data: bytes) -> Encoded:
    """The stream line for pre-framed WebSocket bytes. A broadcast hands the same bytes object to every
    subscriber in one pass, so the last one is kept: a publish is framed for HTTP once, not per session."""
    global _last
    if _last[0] is data:
        return _last[1]
    line = sockjs.array_frame(sockjs.unwrap_ws_frames(data))
    encoded = (line, b"%x\r\n%b\r\n" % (len(line), line), text_length(line))
    _last = (data, encoded)
    return encoded


class Receiver:
    """One held receive request: a streaming response that stays open, or a long poll answered once."""

    __slots__ = ("chunked", "cors", "keep_alive", "last_write", "proto", "sent", "session", "streaming")

    def __init__(self, proto: Writer, streaming: bool, keep_alive: bool, chunked: bool,
                 cors: tuple[tuple[str, str], ...], now: float) -> None:
        self.proto = proto
        self.streaming = streaming
        self.keep_alive = keep_alive and chunked
        self.chunked = chunked  # HTTP/1.1; an HTTP/1.0 stream is raw bytes ended by closing the connection
        self.cors = cors
        self.last_write = now
        self.sent = 0  # characters of the response text pusher-js holds (UTF-16 units, as JavaScript counts)
        self.session: XhrSession | None = None

    def start_stream(self) -> None:
        head = ("HTTP/1.1 200 OK\r\nContent-Type: " + STREAM_TYPE + "\r\n"
                "Cache-Control: no-store, no-cache, no-transform, must-revalidate, max-age=0\r\n"
                # nginx honours this per response: a stream must not wait in a proxy buffer.
                "X-Accel-Buffering: no\r\n")
        head += "Transfer-Encoding: chunked\r\n" if self.chunked else "Connection: close\r\n"
        for name, value in self.cors:
            head += f"{name}: {value}\r\n"
        self.proto.write_raw(head.encode() + b"\r\n")

    def send(self, data: bytes, now: float) -> None:
        """Stream: one more chunk. Poll: the answer, which ends this receive request."""
        if not self.streaming:
            self.finish(data)
            return
        self.last_write = now
        self.sent += text_length(data)
        self.proto.write_raw(b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data)

    def send_encoded(self, encoded: Encoded, now: float) -> None:
        """``send`` for a stream, with the line already framed (see ``encode``)."""
        self.last_write = now
        self.sent += encoded[2]
        self.proto.write_raw(encoded[1] if self.chunked else encoded[0])

    @property
    def full(self) -> bool:
        """A stream pusher-js is about to replace: nothing more may be written to it."""
        return self.streaming and self.sent > STREAM_LIMIT

    def finish(self, data: bytes = b"") -> None:
        proto = self.proto
        if self.streaming:
            if data:
                self.proto.write_raw(b"%x\r\n%b\r\n" % (len(data), data) if self.chunked else data)
            if self.chunked:
                proto.write_raw(b"0\r\n\r\n")
            proto.release(None, self.keep_alive)
        else:

            proto.release(Response(200, data, STREAM_TYPE, self.cors), self.keep_alive)

    def buffered(self) -> int:
        transport = self.proto.transport
        return transport.get_write_buffer_size() if transport is not None else 0


class XhrSession:
    """Implements ``Peer`` for the hub; the HTTP side attaches and detaches receive requests."""

    __slots__ = ("closed", "conn", "id", "idle_since", "metered", "pending", "pending_size", "receiver",
                 "sends", "state")

    def __init__(self, session_id: str, state: SessionHost, now: float) -> None:
        self.id = session_id
        self.state = state
        self.conn: Connection | None = None
        self.receiver: Receiver | None = None
        self.pending: list[bytes] = []  # Pusher messages not yet sent on any receive request
        self.pending_size = 0
        self.closed: tuple[int, str] | None = None
        self.idle_since: float | None = now  # when the last receive request ended; None while one is held
        self.sends: list[int] = []  # the newest xhr_send request numbers, ascending
        self.metered: tuple[str, str] | None = None

    # -- Peer --------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        receiver = self.receiver
        if receiver is not None and receiver.streaming and not self.pending and not receiver.full:
            receiver.send_encoded(encode(data), self.state.clock())
            return
        self.pending.extend(sockjs.unwrap_ws_frames(data))
        self.pending_size += len(data)
        self.deliver()

    def buffered(self) -> int:
        receiver = self.receiver
        return self.pending_size + (receiver.buffered() if receiver is not None else 0)

    def close(self, code: int, reason: str) -> None:
        """The hub closed the connection: the close line goes out on the current or next receive request."""
        self._release_metered()
        conn = self.conn
        if self.pending_size > self.state.settings.max_outbox_bytes:
            # Too slow to read (4100): what it did not fetch is dropped; the error and the close still go out.
            self.pending.clear()
            self.pending_size = 0
        if conn is not None and conn.outbox:
            data = conn.take_outbox()
            self.pending.extend(sockjs.unwrap_ws_frames(data))
            self.pending_size += len(data)
        self.closed = (code, reason)
        self.deliver()

    # -- receive requests --------------------------------------------------------------------

    def attach(self, receiver: Receiver, now: float, opening: bool = False) -> None:
        old = self.receiver
        if old is not None:
            # One receive request per session: a newer one replaces the older (pusher-js has aborted it when it
            # reconnects a stream or polls again; we may not have seen that yet).
            self.receiver = None
            old.finish(b"")
        self.receiver = receiver
        receiver.session = self
        self.idle_since = None
        if self.conn is not None and self.closed is None:
            self.conn.last_seen = now  # polling again is proof of life, like a pong
            self.conn.ping_sent_at = None
        if receiver.streaming:
            receiver.start_stream()
            if opening:
                receiver.send(sockjs.OPEN, now)
        self.deliver()

    def detach(self, receiver: Receiver, now: float) -> None:
        if self.receiver is receiver:
            self.receiver = None
            self.idle_since = now

    def deliver(self) -> None:
        receiver = self.receiver
        if receiver is None or (receiver.full and self.closed is None):
            return
        data = b""
        if self.pending:
            data = sockjs.array_frame(self.pending)
            self.pending.clear()
            self.pending_size = 0
        now = self.state.clock()
        if self.closed is not None:
            self.receiver = None
            self.forget()
            receiver.finish(data + sockjs.close_frame(*self.closed))
        elif data:
            if not receiver.streaming:
                self.receiver = None
                self.idle_since = now
            receiver.send(data, now)

    # -- lifetime ----------------------------------------------------------------------------

    def accept_send(self, number: int) -> str | None:
        """Remember an xhr_send request number; the reason to refuse it when it is a replay or too old."""
        sends = self.sends
        index = bisect.bisect_left(sends, number)
        if index < len(sends) and sends[index] == number:
            return f"Replayed xhr_send: request n={number} was already handled for this session"
        if len(sends) >= SEND_WINDOW and index == 0:
            return (f"Out-of-order xhr_send: request n={number} is older than the last {SEND_WINDOW} handled "
                    f"(newest n={sends[-1]})")
        sends.insert(index, number)
        if len(sends) > SEND_WINDOW:
            del sends[0]
        return None

    def expire(self) -> None:
        """No receive request came for too long: the client is gone, as when a WebSocket's TCP drops."""
        conn = self.conn
        if conn is not None and not conn.closing:
            self.state.hub.remove(conn)
            conn.closing = True
        self._release_metered()
        self.pending.clear()
        self.pending_size = 0
        self.forget()

    def forget(self) -> None:
        sessions = self.state.http_sessions
        if sessions.get(self.id) is self:
            del sessions[self.id]

    def _release_metered(self) -> None:
        if self.metered is not None and self.state.meter is not None:
            self.state.meter.connection_closed(self.metered)
        self.metered = None


def sweep(state: SessionHost, now: float) -> None:
    """Heartbeats on held receive requests, and expiry of sessions nobody receives on (run every sweep)."""
    settings = state.settings
    for session in list(state.http_sessions.values()):
        receiver = session.receiver
        if receiver is not None:
            if now - receiver.last_write >= settings.http_heartbeat_interval and not receiver.full:
                # Streams: keeps proxies from timing out, and pusher-js answers with an empty xhr_send.
                # Polls: answered empty-handed, pusher-js polls again at once.
                receiver.send(sockjs.HEARTBEAT, now)
                if not receiver.streaming:
                    session.detach(receiver, now)
        elif session.idle_since is not None and now - session.idle_since >= settings.http_session_timeout:
            session.expire()
