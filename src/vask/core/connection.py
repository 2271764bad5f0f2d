"""One client connection's state and its bounded outbox. No I/O: bytes go to a ``Peer``."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from vask.apps.base import App
from vask.protocol import frames


class Peer(Protocol):
    """The transport side of a connection, implemented by the server layer (and by fakes in tests)."""

    def write(self, data: bytes) -> None:
        """Send already framed bytes."""

    def buffered(self) -> int:
        """Bytes accepted by ``write`` and not yet sent to the network."""

    def close(self, code: int, reason: str) -> None:
        """Start the WebSocket close handshake with this code; the peer reports back when it is gone."""


class Flusher(Protocol):
    def mark(self, conn: Connection) -> None:
        """``conn`` has frames queued: flush it once at the end of this loop pass."""


def new_socket_id() -> str:
    # A CSPRNG, so a socket id (used for exclusion and auth strings) cannot be guessed by another client.
    # One 96-bit draw for both parts (each draw is a syscall; churn opens a socket id per connection); the
    # modulo bias is below 10**-9.
    n = int.from_bytes(secrets.token_bytes(12))
    return f"{n % 10**9}.{n // 10**9 % 10**10}"


@dataclass(slots=True)
class Subscription:
    channel: str
    user_id: str | None = None  # presence member id on presence channels
    ready: bool = True  # subscription_succeeded sent (a cluster presence join waits for the member list)
    cache_id: str | None = None  # cluster cache channels: the last event this subscriber got (no replays twice)


class Connection:
    __slots__ = (
        "app",
        "authorized",
        "closing",
        "connected_at",
        "flusher",
        "last_seen",
        "max_outbox",
        "outbox",
        "outbox_size",
        "peer",
        "ping_sent_at",
        "recv_bytes",
        "recv_frames",
        "sent_bytes",
        "sent_frames",
        "socket_id",
        "subscriptions",
        "tokens",
        "tokens_at",
        "user_data",
        "user_id",
        "watchlist",
    )

    def __init__(self, app: App, peer: Peer, flusher: Flusher, now: float, max_outbox: int) -> None:
        self.app = app
        self.socket_id = new_socket_id()
        self.peer = peer
        self.flusher = flusher
        self.max_outbox = max_outbox
        self.outbox: list[bytes] = []
        self.outbox_size = 0
        self.closing = False
        self.subscriptions: dict[str, Subscription] = {}
        self.user_id: str | None = None  # signed-in user
        self.user_data: dict[str, Any] | None = None
        self.watchlist: list[str] = []
        self.connected_at = now
        self.last_seen = now
        self.ping_sent_at: float | None = None
        self.tokens = float(app.settings.max_client_events_per_second)
        self.tokens_at = now
        self.authorized = False  # signed in or holding a private/presence subscription
        # Traffic counters for metrics (vask.server.metrics), folded per app when the connection is gone.
        self.recv_bytes = self.recv_frames = self.sent_bytes = self.sent_frames = 0

    def push(self, frame: bytes) -> None:
        """Queue one framed message; the flusher writes the queue once per loop pass."""
        if self.closing:
            return
        if not self.outbox:
            self.flusher.mark(self)
        self.outbox.append(frame)
        self.outbox_size += len(frame)

    def send(self, payload: bytes) -> None:
        self.push(frames.ws_frame(payload))

    def take_outbox(self) -> bytes:
        data = self.outbox[0] if len(self.outbox) == 1 else b"".join(self.outbox)
        self.outbox.clear()
        self.outbox_size = 0
        return data

    def over_bound(self) -> bool:
        """True when the client does not read fast enough: its unsent bytes passed the bound."""
        return self.outbox_size + self.peer.buffered() > self.max_outbox

    def take_token(self, now: float) -> bool:
        """Token bucket for client events: ``max_client_events_per_second`` per second, bursts up to that."""
        rate = self.app.settings.max_client_events_per_second
        self.tokens = min(float(rate), self.tokens + (now - self.tokens_at) * rate)
        self.tokens_at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False
