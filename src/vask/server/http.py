"""One TCP connection: HTTP/1.1 parsed by httptools; an upgrade to /app/{key} turns it into a WebSocket.

Requests are answered in order (keep-alive and pipelining); app look-ups that miss the cache are the only
awaits, and reading pauses while one is pending so order is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from http import HTTPStatus
from typing import Any, cast

import httptools

from vask.console import logs
from vask.console.emit import REFUSED_STATUSES, http_refused
from vask.core.connection import Connection
from vask.protocol import frames, sockjs
from vask.protocol.constants import MAX_HTTP_HEADER_BYTES as MAX_HEADER_BYTES
from vask.server import websocket, xhr
from vask.server.appcache import AppStoreUnavailable
from vask.server.handshake import fast_handshake, reset
from vask.server.messages import HttpRequest, Response
from vask.server.node import ServerState
from vask.server.proxies import client_address, peer_of
from vask.server.routes import Deferred, respond, respond_async
from vask.server.wsframes import ServerFrames
from vask.server.xhr_session import Receiver
from vask.tasks import spawn

log = logging.getLogger("vask.http")

# Every wait on a client is bounded by a setting (RELIABILITY.md, "Timeouts and floods"): http_request_timeout
# from the connection's opening or a request's first byte, http_idle_timeout between keep-alive requests,
# ws_frame_timeout for a started frame or message, close_timeout for the client's side of a close.
_TOO_MANY = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 76\r\n"
             b"Connection: close\r\n\r\n"
             b'{"error": "Too many connections from this address: close some, then retry"}\n')


class HttpProtocol(asyncio.Protocol):
    # Slots and dropping the HTTP parser after the upgrade keep an idle WebSocket small (BENCHMARKS.md).
    __slots__ = ("body", "body_size", "busy", "conn", "deadline", "early", "fragments", "header_bytes", "headers",
                 "loop", "metered", "opening", "parser", "peer_ip", "queue", "receiver", "state", "timer",
                 "transport", "url", "utf8", "ws")

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser: Any = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_size = 0
        self.queue: list[HttpRequest] = []  # pipelined requests; a list, as an empty deque costs 600 bytes
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0  # when the armed timeout is due (vask.server.http._arm)
        self.ws: ServerFrames | None = None
        self.conn: Connection | None = None
        self.fragments: list[bytes] = []
        self.early: list[bytes] = []  # frames that arrive before the Pusher handshake finished
        self.metered: tuple[str, str] | None = None  # (account, app) the meter counts this connection under
        self.opening = False
        self.receiver: Receiver | None = None  # a held receive request of pusher-js' HTTP transports
        self.peer_ip: str | None = None  # counted in the guard's per-address cap
        self.utf8: Any = None  # incremental UTF-8 decoder of the text message being received

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports don't subclass it
        guard = self.state.guard
        peer = self.transport.get_extra_info("peername")
        ip = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not guard.admit(ip):
            self.transport.write(_TOO_MANY)
            self.transport.close()
            self.timer = self.loop.call_later(self.state.settings.close_timeout, reset, self.transport)
            return
        self.peer_ip = ip
        self.state.protocols.add(self)
        self._arm(self.state.settings.http_request_timeout)
        self._wait_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self.state.protocols.discard(self)
        self._disarm()
        self.state.guard.leave(self)
        if self.peer_ip is not None:
            self.state.guard.release(self.peer_ip)
            self.peer_ip = None
        if self.conn is not None:
            self.state.hub.remove(self.conn)
            self.conn.closing = True
            self.state.metrics.closed(self.conn)
        self._release_metered()
        receiver = self.receiver
        if receiver is not None and receiver.session is not None:
            self.receiver = None
            receiver.session.detach(receiver, self.state.clock())

    def data_received(self, data: bytes) -> None:
        if self.ws is not None:
            if self.conn is None and self.opening:
                self.early.append(data)
            elif self.conn is None:  # refused: only the client's close frame matters now
                self.ws.receive_data(data)
                self.ws.events_received()
                self.send_ws_output()
            else:
                websocket.receive(self, self.ws, data, self.state)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            offset = upgrade.args[0] if upgrade.args else len(data)
            if data[offset:]:
                self.early.append(data[offset:])
        except httptools.HttpParserError as exc:
            # httptools wraps exceptions raised in callbacks; the size checks raise _TooLarge there.
            cause = exc.__context__ if isinstance(exc.__context__, _TooLarge) else None
            if cause is not None:
                self._fail(cause.status, str(cause))
            else:
                self._fail(HTTPStatus.BAD_REQUEST, "Malformed HTTP request")
        except _TooLarge as exc:
            self._fail(exc.status, str(exc))

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.header_bytes = 0
        self.body = []
        self.body_size = 0
        self._arm(self.state.settings.http_request_timeout)

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_header(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header(len(name) + len(value))
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def _count_header(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _TooLarge(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Request headers too large")

    def on_body(self, body: bytes) -> None:
        self.body_size += len(body)
        if self.body_size > self.state.settings.max_http_body_bytes:
            raise _TooLarge(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"Request body too large: the limit is {self.state.settings.max_http_body_bytes} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        path, _, query = self.url.decode("latin-1").partition("?")
        request = HttpRequest(self.parser.get_method().decode(), path, query, self.headers,
                              b"".join(self.body), self.parser.should_keep_alive(), self.parser.should_upgrade(),
                              self.parser.get_http_version(), time.perf_counter())
        self.queue.append(request)
        if not self.busy:
            self._drain()

    # -- request handling --------------------------------------------------------------------

    def _drain(self) -> None:
        while self.queue and self.transport is not None and not self.transport.is_closing():
            request = self.queue[0]
            if request.upgrade:
                self.queue.clear()
                self._upgrade(request)
                return
            if sockjs.is_transport_path(request.path) and not request.upgrade:
                del self.queue[0]
                try:
                    response = xhr.handle(self, request)
                except Exception:
                    log.exception("error answering %s %s", request.method, request.path)
                    response = Response.error(500, "Internal server error")
                if response is None:
                    return  # held: release() answers it and carries on with the queue
                self._write_response(response, request.keep_alive)
                continue
            try:
                answer = respond(self.state, request)
            except Exception:  # a bug must cost one request, not the connection or the process
                log.exception("error answering %s %s", request.method, request.path)
                answer = Response.error(500, "Internal server error")
            if not isinstance(answer, Response):  # an app to load or a cluster view to read first
                self.busy = True
                self.transport.pause_reading()
                spawn(self._finish_async(request, answer), f"answer {request.method} {request.path[:80]}")
                return
            del self.queue[0]
            self._answered(request, answer)
        if not self.queue and self.transport is not None and not self.transport.is_closing():
            self._arm(self.state.settings.http_idle_timeout)
            self._wait_request()

    async def _finish_async(self, request: HttpRequest, deferred: Deferred) -> None:
        try:
            response = await respond_async(self.state, request, deferred)
        except Exception:
            log.exception("error answering %s %s", request.method, request.path)
            response = Response.error(500, "Internal server error")
        self.busy = False
        if self.transport is None or self.transport.is_closing():
            return
        del self.queue[0]
        self._answered(request, response)
        self.transport.resume_reading()
        self._drain()

    def _answered(self, request: HttpRequest, response: Response) -> None:
        self._write_response(response, request.keep_alive)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %d from %s", request.method, request.path, response.status, client_address(
                peer_of(self.transport), request.headers, self.state.settings.trusted_proxies))
        if request.path.startswith("/apps/"):
            app_id = request.path[6:].split("/", 1)[0]
            if self.state.apps.cached_by_id(app_id)[1] is not None:  # only known apps become metric labels
                self.state.metrics.http_call(app_id, request.path, len(request.body), len(response.body),
                                             time.perf_counter() - request.started)

    def _write_response(self, response: Response, keep_alive: bool) -> None:
        assert self.transport is not None
        keep_alive = keep_alive and not self.state.shutting_down
        head = _head(response.status, response.content_type) + f"Content-Length: {len(response.body)}\r\n"
        for name, value in response.headers:
            head += f"{name}: {value}\r\n"
        if not keep_alive:
            head += "Connection: close\r\n"
        self.transport.write(head.encode() + b"\r\n" + response.body)
        if not keep_alive:
            self._close_after_flush()

    # -- held requests (pusher-js' HTTP transports, vask.server.xhr) --------------------------

    def hold(self, receiver: Receiver | None = None) -> None:
        """Answer the current request later; requests behind it wait (HTTP/1.1 answers in order)."""
        self.busy = True
        self.receiver = receiver
        self._disarm()
        self.state.guard.leave(self)  # a held receive request is a live session, not a half-open socket

    def release(self, response: Response | None, keep_alive: bool) -> None:
        """The held request is answered (``response``), or its stream was ended: carry on with the next."""
        self.busy = False
        self.receiver = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if response is not None:
            self._write_response(response, keep_alive)
        elif not keep_alive or self.state.shutting_down:
            transport.close()
        if not transport.is_closing():
            self._drain()

    def write_raw(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _fail(self, status: HTTPStatus, message: str) -> None:
        if status.value in REFUSED_STATUSES:  # 413: logged and shown in the app's console
            path = self.url.decode("latin-1").partition("?")[0]
            app_id = (path[6:].split("/", 1)[0] or None) if path.startswith("/apps/") else None
            try:
                method = self.parser.get_method().decode() if self.parser is not None else ""
            except Exception:  # the parser failed before it read a method
                method = ""
            http_refused(self.state.hub.console, app_id, method, path, status.value, message)
        if self.transport is not None and not self.transport.is_closing():
            self._write_response(Response.error(status.value, message), keep_alive=False)

    # -- WebSocket ---------------------------------------------------------------------------

    def _upgrade(self, request: HttpRequest) -> None:
        assert self.transport is not None
        self._disarm()
        self.state.guard.leave(self)
        raw, ws = fast_handshake(request.headers, self.state.settings.max_ws_frame_bytes)
        if not raw:
            raw, ws = websocket.handshake(request.path + ("?" + request.query if request.query else ""),
                                          request.headers, self.state.settings.max_ws_frame_bytes)
        if ws is None:
            self.transport.write(raw)
            self._close_after_flush()
            return
        self.ws = ws
        # From here on only WebSocket frames arrive: the HTTP parser and the request are garbage.
        self.parser = None
        self.headers = []
        self.body = []
        self.url = b""
        if not request.path.startswith("/app/") or "/" in request.path[5:] or len(request.path) == 5:
            self.transport.write(raw)
            self._refuse(4005, f"Path not found: connect to /app/{{key}}, not {request.path}")
            return
        problem = websocket.opening_error(request.query, self.state)
        if problem:
            self.transport.write(raw)
            self._refuse(*problem)
            return
        key = request.path[5:]
        if log.isEnabledFor(logging.DEBUG):  # the client's address behind proxies (vask.server.proxies)
            log.debug("WebSocket upgrade for app key %s from %s", key, client_address(
                peer_of(self.transport), request.headers, self.state.settings.trusted_proxies))
        # Only gathered while a console is open (or events are logged): it costs a header scan.
        origin = _header(request.headers, "origin") if self.state.hub.console.active else None
        hit, app = self.state.apps.cached_by_key(key)
        if hit:
            self._open(key, app, origin, raw)
        else:
            self.transport.write(raw)
            self.opening = True
            self.transport.pause_reading()
            spawn(self._open_async(key, origin), f"open a WebSocket for app key {key[:40]}")

    async def _open_async(self, key: str, origin: str | None) -> None:
        try:
            app = await self.state.apps.by_key(key)
        except AppStoreUnavailable:  # the database is down and this app was never seen: "retry later"
            app = None
            problem: tuple[int, str] | None = (4100, "App store unavailable: retry shortly")
        else:
            problem = None
        self.opening = False
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.resume_reading()
        if problem is not None:
            self.early = []
            self._refuse(*problem)
            return
        self._open(key, app, origin)

    def _open(self, key: str, app: Any, origin: str | None = None, reply: bytes = b"") -> None:
        """Open the Pusher connection; ``reply``, the 101 answer when not yet written, goes out with the
        connection_established frame in one write (a syscall less per connection)."""
        assert self.transport is not None
        problem = websocket.app_error(key, app, self.state)
        if problem:
            if reply:
                self.transport.write(reply)
            self._refuse(*problem, app_id=app.id if app is not None else None, key=key)
            return
        conn = self.conn = websocket.establish(self, app, self.state, origin)
        if reply:
            established = conn.take_outbox()
            conn.sent_frames += 1
            conn.sent_bytes += len(established)
            self.transport.write(reply + established)
        early, self.early = self.early, []
        for data in early:
            self.data_received(data)

    def _refuse(self, code: int, reason: str, app_id: str | None = None, key: str | None = None) -> None:
        """Pusher's refusal: a pusher:error frame, then the close code (before any Connection exists)."""
        assert self.transport is not None and self.ws is not None
        logs.refused("connection", reason, app_id=app_id, code=code, key=key if app_id is None else None)
        console = self.state.hub.console
        if app_id is not None and console.watching(app_id):
            console.note(app_id, "error", None, None, code=code, message=reason, refused=True)
        self.transport.write(frames.ws_frame(frames.encode_error(code, reason)))
        self.ws.send_close(code, reason)
        self.send_ws_output()
        self._arm(self.state.settings.close_timeout)

    def send_ws_output(self) -> None:
        if self.ws is None or self.transport is None:
            return
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:  # the close handshake is over (or the client broke the protocol): the server closes TCP
                self._close_after_flush()

    # -- Peer (used by the hub) --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size() if self.transport is not None else 0

    def close(self, code: int, reason: str) -> None:
        # The hub calls this once it has removed the connection: it stops counting toward the account's
        # concurrent connections now, not when the close handshake ends.
        self._release_metered()
        if self.conn is not None and self.conn.outbox:
            self.write(self.conn.take_outbox())
        if self.ws is not None and self.transport is not None and not self.transport.is_closing():
            with contextlib.suppress(Exception):  # already closing: nothing more to say
                self.ws.send_close(code, reason)
            self.send_ws_output()
            self._arm(self.state.settings.close_timeout)

    def _release_metered(self) -> None:
        if self.metered is not None and self.state.meter is not None:
            self.state.meter.connection_closed(self.metered)
        self.metered = None

    # -- timers ------------------------------------------------------------------------------

    def _arm(self, delay: float) -> None:
        # Re-armed twice per request: a later deadline only moves ``deadline``, and the timer, when it fires
        # early, waits again for what is left (one timer per timeout period instead of two per request).
        deadline = self.loop.time() + delay
        self.deadline = deadline
        timer = self.timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self._expire)

    def arm_frame_timer(self) -> None:
        self._arm(self.state.settings.ws_frame_timeout)

    def disarm(self) -> None:
        self._disarm()

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self) -> None:
        self.timer = None
        if self.loop.time() < self.deadline:  # re-armed meanwhile: not due yet
            self.timer = self.loop.call_at(self.deadline, self._expire)
        elif self.transport is not None:
            reset(self.transport)

    def _close_after_flush(self) -> None:
        """Close once the last bytes are sent; a client that never reads them is dropped after close_timeout."""
        transport = self.transport
        assert transport is not None
        transport.close()
        # Plain TCP with nothing left to send closes at once: no timer to create and cancel (connection churn).
        if transport.get_write_buffer_size() or self.state.settings.ssl_cert is not None:
            self._arm(self.state.settings.close_timeout)

    def _wait_request(self) -> None:
        """The socket waits for a request again: it counts as half-open; too many drop the oldest."""
        oldest = self.state.guard.enter(self)
        if oldest is not None and oldest.transport is not None:
            log.warning("more than %d half-open sockets: dropping the oldest", self.state.settings.max_half_open)
            reset(oldest.transport)

    # -- flow control ------------------------------------------------------------------------

    def pause_writing(self) -> None:
        # Pipelined requests from a client that does not read its responses: stop reading more until it does,
        # so its responses cannot grow memory; the request timer bounds how long we wait.
        if self.ws is None and self.transport is not None:
            self.transport.pause_reading()
            self._arm(self.state.settings.http_request_timeout)

    def resume_writing(self) -> None:
        if self.ws is None and self.transport is not None and not self.busy and not self.transport.is_closing():
            self.transport.resume_reading()


@functools.lru_cache(maxsize=64)
def _head(status: int, content_type: str) -> str:
    """The status line and Content-Type of a response: a handful of pairs, built once each."""
    return f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {content_type}\r\n"


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value[:200]
    return None


class _TooLarge(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
