"""Raw Pusher-protocol WebSocket clients and hand-signed HTTP API requests for the integration tests.

``RawClient`` speaks the wire protocol directly (websockets' sync client), so tests see exactly the frames
and close codes the server sends. ``signed`` builds HTTP API requests the way pusher-http-python does
(``auth_*`` and ``body_md5`` query parameters, HMAC-SHA256 over ``METHOD\\npath\\nsorted query``), computed
here from the protocol reference rather than with the server's own code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import select
import socket
import ssl
import time
from typing import Any

import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

TIMEOUT = 5.0
SOCKET_ID_RE = r"\A\d+\.\d+\Z"


def hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def data_of(frame: dict[str, Any]) -> Any:
    """The frame's ``data``, JSON-decoded when it is a string (Pusher double-encodes it)."""
    data = frame.get("data")
    if isinstance(data, str):
        try:
            return json.loads(data)
        except ValueError:
            return data
    return data


class RawClient:
    """One WebSocket connection speaking the Pusher protocol by hand."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.socket_id = ""
        self.established: dict[str, Any] = {}

    # -- receiving -------------------------------------------------------------------------------

    def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        raw = self.ws.recv(timeout=timeout)
        assert isinstance(raw, str), f"expected a text frame, got {raw!r}"
        frame = json.loads(raw)
        assert isinstance(frame, dict), raw
        return frame

    def expect(self, event: str, channel: str | None = None, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next frame named ``event`` (on ``channel`` if given); other frames are skipped."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {event} frame within {timeout}s; got {seen}")
            try:
                frame = self.recv(left)
            except TimeoutError:
                raise AssertionError(f"no {event} frame within {timeout}s; got {seen}") from None
            if frame.get("event") == event and (channel is None or frame.get("channel") == channel):
                return frame
            seen.append(frame)

    def nothing(self, within: float = 0.5, ignore: tuple[str, ...] = ("pusher_internal:subscription_count",)) -> None:
        """Assert that no frame (other than ``ignore``d ones) arrives within ``within`` seconds."""
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = self.recv(left)
            except TimeoutError:
                return
            assert frame.get("event") in ignore, f"unexpected frame {frame}"

    def closed(self, timeout: float = TIMEOUT) -> tuple[int | None, list[dict[str, Any]]]:
        """Read until the server closes; return the close code (None: no close frame) and the frames read."""
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the server did not close the connection within {timeout}s; got {frames}")
            try:
                raw = self.ws.recv(timeout=left)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                return (exc.rcvd.code if exc.rcvd is not None else None), frames
            if isinstance(raw, str):
                frames.append(json.loads(raw))

    # -- sending ---------------------------------------------------------------------------------

    def send(self, event: str, data: Any = None, channel: str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": {} if data is None else data}
        if channel is not None:
            frame["channel"] = channel
        self.ws.send(json.dumps(frame))

    def subscribe(self, channel: str, auth: str | None = None, channel_data: str | None = None,
                  *, expect: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"channel": channel, "auth": auth or ""}
        if channel_data is not None:
            data["channel_data"] = channel_data
        self.send("pusher:subscribe", data)
        return self.expect("pusher_internal:subscription_succeeded", channel) if expect else {}

    def subscribe_private(self, channel: str, key: str, secret: str) -> dict[str, Any]:
        return self.subscribe(channel, f"{key}:{hmac_hex(secret, f'{self.socket_id}:{channel}')}")

    def subscribe_presence(self, channel: str, key: str, secret: str, user_id: str,
                           user_info: Any = None) -> dict[str, Any]:
        channel_data = json.dumps({"user_id": user_id, "user_info": user_info or {}})
        auth = f"{key}:{hmac_hex(secret, f'{self.socket_id}:{channel}:{channel_data}')}"
        return self.subscribe(channel, auth, channel_data)

    def signin(self, key: str, secret: str, user_id: str) -> dict[str, Any]:
        user_data = json.dumps({"id": user_id})
        auth = f"{key}:{hmac_hex(secret, f'{self.socket_id}::user::{user_data}')}"
        self.send("pusher:signin", {"auth": auth, "user_data": user_data})
        return self.expect("pusher:signin_success")

    def ping(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        self.send("pusher:ping", {})
        return self.expect("pusher:pong", timeout=timeout)

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_ws(url: str, *, sock: socket.socket | None = None, ssl_context: ssl.SSLContext | None = None,
            max_size: int | None = 2**22, max_queue: int = 16) -> ClientConnection:
    """A websockets sync client with no compression, no proxy and no automatic pings (they count as activity).

    It stops reading from the socket once ``max_queue`` messages wait unread.
    """
    return connect(url, sock=sock, ssl=ssl_context, proxy=None, compression=None, ping_interval=None,
                   open_timeout=TIMEOUT, close_timeout=2, max_size=max_size, max_queue=max_queue, legacy=True)


def connect_raw(server: Any, key: str | None = None, query: str = "protocol=7&client=py&version=1.0",
                *, established: bool = True, ssl_context: ssl.SSLContext | None = None,
                sock: socket.socket | None = None, max_queue: int = 16) -> RawClient:
    """Connect to ``/app/{key}``; with ``established``, read and check ``pusher:connection_established``."""
    key = key if key is not None else server.app.key
    url = f"{server.ws_url}/app/{key}" + (f"?{query}" if query else "")
    client = RawClient(open_ws(url, ssl_context=ssl_context, sock=sock, max_queue=max_queue))
    if established:
        frame = client.expect("pusher:connection_established")
        assert isinstance(frame["data"], str), frame
        client.established = json.loads(frame["data"])
        client.socket_id = client.established["socket_id"]
    return client


def assert_refused(server: Any, code: int, key: str | None = None, query: str = "protocol=7") -> None:
    """Open a connection the server must refuse with ``code``: a pusher:error frame, then that close code."""
    close_code, frames = connect_raw(server, key, query, established=False).closed()
    assert close_code == code, (close_code, frames)
    errors = [f for f in frames if f.get("event") == "pusher:error"]
    assert errors and data_of(errors[0])["code"] == code, frames
    assert not any(f.get("event") == "pusher:connection_established" for f in frames), frames


def refused_code(server: Any) -> int | None:
    """None if a new connection is accepted, else its close code."""
    client = connect_raw(server, established=False)
    frame = client.recv()
    if frame["event"] == "pusher:connection_established":
        client.close()
        return None
    return client.closed()[0]


# -- HTTP API ------------------------------------------------------------------------------------


def signed(server: Any, method: str, path: str, body: bytes | str | None = None,
           params: dict[str, str] | None = None, *, key: str | None = None, secret: str | None = None,
           timestamp: float | None = None, body_md5: bool | None = None,
           verify: str | bool = True) -> requests.Response:
    """Send a signed HTTP API request as pusher-http-python builds it, with the raw ``requests`` library.

    ``body_md5`` defaults to being sent whenever a body is, and on GET (as pusher-http-python does).
    """
    raw = body.encode() if isinstance(body, str) else (body or b"")
    query = {"auth_key": key or server.app.key, "auth_timestamp": str(int(timestamp or time.time())),
             "auth_version": "1.0", **(params or {})}
    if body_md5 is None or body_md5:
        query["body_md5"] = hashlib.md5(raw).hexdigest()
    ordered = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
    signature = hmac_hex(secret or server.app.secret, f"{method}\n{path}\n{ordered}")
    url = f"{server.http_url}{path}?{ordered}&auth_signature={signature}"
    headers = {"Content-Type": "application/json"} if raw else {}
    return requests.request(method, url, data=raw or None, headers=headers, timeout=TIMEOUT, verify=verify)


def trigger_body(channels: list[str], name: str = "ev", data: str = "{}", **extra: Any) -> str:
    return json.dumps({"name": name, "channels": channels, "data": data, **extra})


def http_exchange(server: Any, request: bytes, body_chunks: int = 0, chunk: bytes = b"") -> bytes:
    """Send a raw request (and body chunks), reading the response as soon as the server answers."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        try:
            sock.sendall(request)
            for _ in range(body_chunks):
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered early
                sock.sendall(chunk)
        except OSError:
            pass  # the server stopped reading: its response is waiting
        try:
            return sock.recv(65536)
        except OSError:
            return b""
