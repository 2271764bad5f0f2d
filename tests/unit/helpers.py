"""Fakes for testing the sans-I/O protocol core (vask.core, vask.protocol) without an event loop.

A ``World`` holds a Hub with a fake clock and a recording Observer; ``World.connect`` makes a ``Client``:
a Connection whose Peer records the bytes written to it. Frames are queued on the connection's outbox
and reach the peer only when the fake Flusher flushes, as the server's Flusher does once per loop pass.
``Client.frames()`` flushes and decodes the WebSocket text frames written since the last call.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from vask.apps.base import App, AppSettings
from vask.core import session
from vask.core.connection import Connection
from vask.core.hub import Hub
from vask.core.observer import Observer

# The key, secret and socket id of the worked vectors in pusher-protocol.md §1.8.
KEY = "278d425bdf160c739803"
SECRET = "7ad3773142a6692b25b8"
SOCKET = "1234.1234"
MAX_OUTBOX = 1 << 20


def make_app(**settings: Any) -> App:
    return App(id="3", key=KEY, secret=SECRET, settings=AppSettings(**settings))


def hmac_hex(message: str, secret: str = SECRET) -> str:
    # Computed here with hmac directly, not with vask.protocol.auth, so the tests check the server's signing.
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def channel_auth(socket_id: str, channel: str, channel_data: str | None = None) -> str:
    message = f"{socket_id}:{channel}" if channel_data is None else f"{socket_id}:{channel}:{channel_data}"
    return f"{KEY}:{hmac_hex(message)}"


def signin_auth(socket_id: str, user_data: str) -> str:
    return f"{KEY}:{hmac_hex(f'{socket_id}::user::{user_data}')}"


# --- WebSocket framing ---------------------------------------------------------------------------------------

def decode_ws(stream: bytes) -> list[bytes]:
    """Split a byte stream of unmasked, final server text frames (RFC 6455 §5.2) into their payloads."""
    payloads: list[bytes] = []
    i = 0
    while i < len(stream):
        assert stream[i] == 0x81, f"not a final text frame: first byte {stream[i]:#x}"
        second = stream[i + 1]
        assert second & 0x80 == 0, "server frames must not be masked"
        length = second & 0x7F
        i += 2
        if length == 126:
            length = int.from_bytes(stream[i:i + 2], "big")
            i += 2
        elif length == 127:
            length = int.from_bytes(stream[i:i + 8], "big")
            i += 8
        assert i + length <= len(stream), "truncated frame"
        payloads.append(stream[i:i + length])
        i += length
    return payloads


# --- fakes ---------------------------------------------------------------------------------------------------

class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class FakePeer:
    def __init__(self) -> None:
        self.written = bytearray()
        self.writes: list[bytes] = []
        self.pending = 0  # what buffered() answers
        self.closed: tuple[int, str] | None = None
        self.close_calls = 0
        self.conn: Connection | None = None

    def write(self, data: bytes) -> None:
        assert self.closed is None, "write after close"
        self.writes.append(data)
        self.written += data

    def buffered(self) -> int:
        return self.pending

    def close(self, code: int, reason: str) -> None:
        # Like the server's peer: frames still queued on the connection go out before the close frame.
        if self.conn is not None and self.conn.outbox:
            self.write(self.conn.take_outbox())
        self.close_calls += 1
        self.closed = (code, reason)


class FakeFlusher:
    def __init__(self) -> None:
        self.marked: list[Connection] = []

    def mark(self, conn: Connection) -> None:
        self.marked.append(conn)

    def flush(self) -> None:
        marked, self.marked = self.marked, []
        for conn in marked:
            if conn.outbox and not conn.closing:
                conn.peer.write(conn.take_outbox())


class RecordingObserver(Observer):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def _record(self, name: str, app: App, *args: Any) -> None:
        self.calls.append((name, app.id, *args))

    def channel_occupied(self, app: App, channel: str) -> None:
        self._record("channel_occupied", app, channel)

    def channel_vacated(self, app: App, channel: str) -> None:
        self._record("channel_vacated", app, channel)

    def member_added(self, app: App, channel: str, user_id: str) -> None:
        self._record("member_added", app, channel, user_id)

    def member_removed(self, app: App, channel: str, user_id: str) -> None:
        self._record("member_removed", app, channel, user_id)

    def client_event(self, app: App, channel: str, event: str, data: Any, socket_id: str,
                     user_id: str | None) -> None:
        self._record("client_event", app, channel, event, data, socket_id, user_id)

    def cache_miss(self, app: App, channel: str) -> None:
        self._record("cache_miss", app, channel)

    def subscription_count(self, app: App, channel: str, count: int) -> None:
        self._record("subscription_count", app, channel, count)

    def broadcast(self, app: App, channel: str, deliveries: int) -> None:
        self._record("broadcast", app, channel, deliveries)

    def named(self, *names: str) -> list[tuple[Any, ...]]:
        return [call for call in self.calls if call[0] in names]


# --- a hub with clients ----------------------------------------------------------------------------------------

class Client:
    def __init__(self, world: World, conn: Connection, peer: FakePeer) -> None:
        self.world = world
        self.conn = conn
        self.peer = peer
        self._read = 0

    @property
    def socket_id(self) -> str:
        return self.conn.socket_id

    def send_raw(self, payload: bytes | str) -> None:
        session.handle(self.world.hub, self.conn, payload.encode() if isinstance(payload, str) else payload,
                       self.world.clock())

    def send(self, event: str, data: Any = None, channel: str | None = None) -> None:
        message: dict[str, Any] = {"event": event, "data": data}
        if channel is not None:
            message["channel"] = channel
        self.send_raw(json.dumps(message))

    def subscribe(self, channel: str, auth: str | None = None, channel_data: str | None = None,
                  sign: bool = False) -> None:
        """pusher:subscribe as pusher-js sends it; ``sign=True`` signs it with the app secret."""
        if sign:
            auth = channel_auth(self.socket_id, channel, channel_data)
        data: dict[str, Any] = {"auth": auth or "", "channel": channel}
        if channel_data is not None:
            data["channel_data"] = channel_data
        self.send("pusher:subscribe", data)

    def join(self, channel: str, user_id: Any, user_info: Any = None) -> str:
        """Subscribe to a presence channel with signed channel_data; returns the channel_data."""
        member: dict[str, Any] = {"user_id": user_id}
        if user_info is not None:
            member["user_info"] = user_info
        channel_data = json.dumps(member)
        self.subscribe(channel, channel_data=channel_data, sign=True)
        return channel_data

    def unsubscribe(self, channel: str) -> None:
        self.send("pusher:unsubscribe", {"channel": channel})

    def signin(self, user: dict[str, Any], auth: str | None = None) -> str:
        user_data = json.dumps(user)
        self.send("pusher:signin", {"auth": auth or signin_auth(self.socket_id, user_data),
                                    "user_data": user_data})
        return user_data

    def raw_frames(self) -> list[bytes]:
        """Payloads of the frames written to the peer since the last read (flushes first)."""
        self.world.flusher.flush()
        new = bytes(self.peer.written[self._read:])
        self._read = len(self.peer.written)
        return decode_ws(new)

    def frames(self) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.raw_frames()]

    def events(self) -> list[str]:
        return [f["event"] for f in self.frames()]

    def disconnect(self) -> None:
        self.world.hub.remove(self.conn)


class World:
    def __init__(self, app: App | None = None, **settings: Any) -> None:
        self.clock = Clock()
        self.observer = RecordingObserver()
        self.hub = Hub(self.clock, self.observer)
        self.flusher = FakeFlusher()
        self.app = app or make_app(**settings)

    def connect(self, socket_id: str | None = None, max_outbox: int = MAX_OUTBOX) -> Client:
        peer = FakePeer()
        conn = Connection(self.app, peer, self.flusher, self.clock(), max_outbox)
        if socket_id is not None:
            conn.socket_id = socket_id
        peer.conn = conn
        self.hub.add(conn)
        return Client(self, conn, peer)

    def clients(self, n: int) -> list[Client]:
        return [self.connect() for _ in range(n)]


def error_frame(code: int | None, message: str) -> dict[str, Any]:
    return {"event": "pusher:error", "data": {"code": code, "message": message}}


def internal(event: str, payload: Any, channel: str | None = None) -> dict[str, Any]:
    """A decoded frame whose data is the JSON string of ``payload``, with the server's compact separators."""
    frame: dict[str, Any] = {"event": event, "data": json.dumps(payload, separators=(",", ":"))}
    if channel is not None:
        frame["channel"] = channel
    return frame


def succeeded(channel: str) -> dict[str, Any]:
    return {"event": "pusher_internal:subscription_succeeded", "data": "{}", "channel": channel}


def presence_data(frame: dict[str, Any]) -> dict[str, Any]:
    assert frame["event"] == "pusher_internal:subscription_succeeded", frame
    assert isinstance(frame["data"], str), "presence data is a JSON string"
    payload: dict[str, Any] = json.loads(frame["data"])["presence"]
    return payload
