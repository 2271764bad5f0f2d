"""Shared state of one server process, and the per-loop-pass flusher that coalesces writes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from vask.config import Settings
from vask.core.connection import Connection, Peer
from vask.core.hub import Hub
from vask.protocol import constants as c
from vask.server.appcache import AppCache
from vask.server.guard import Guard
from vask.server.limits import RateLimits
from vask.server.messages import HttpRequest, Response
from vask.server.metrics import DataPlaneMetrics
from vask.server.xhr_session import XhrSession

if TYPE_CHECKING:
    from vask.billing.meter import Meter
    from vask.cluster.replicator import Replicator
    from vask.console.feed import ConsoleFeed
    from vask.console.stats import StatsQuery, StatsRecorder
    from vask.server.wsframes import ServerFrames


class Flusher:
    """Writes every dirty connection's queued frames as one write, once per event-loop pass."""

    def __init__(self, loop: asyncio.AbstractEventLoop, hub: Callable[[], Hub]) -> None:
        self.loop = loop
        self.hub = hub
        self.dirty: list[Connection] = []
        self.scheduled = False

    def mark(self, conn: Connection) -> None:
        self.dirty.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            outbox = conn.outbox
            if not outbox or conn.closing:
                continue
            # Connection.take_outbox, inlined: this loop runs once per subscriber per pass.
            data = outbox[0] if len(outbox) == 1 else b"".join(outbox)
            conn.sent_frames += len(outbox)
            conn.sent_bytes += len(data)
            outbox.clear()
            conn.outbox_size = 0
            peer = conn.peer
            peer.write(data)
            if peer.buffered() > conn.max_outbox:
                # A client that stops reading is cut off rather than allowed to grow memory.
                self.hub().close(conn, c.OVER_CAPACITY, "Client too slow: it does not read its messages")


class HttpPeer(Peer, Protocol):
    """What the handlers, the guard, the metrics and shutdown need of one HTTP connection: the interface of
    vask.server.http.HttpProtocol, so that the modules it dispatches to need not import it."""
    state: ServerState
    transport: asyncio.Transport | None
    conn: Connection | None
    ws: ServerFrames | None
    queue: list[HttpRequest]
    fragments: list[bytes]
    utf8: Any
    metered: tuple[str, str] | None
    timer: asyncio.TimerHandle | None

    def hold(self, receiver: Any = None) -> None:
        """Answer the current request later (``receiver``: a held receive request of the HTTP transports)."""

    def release(self, response: Response | None, keep_alive: bool) -> None: ...

    def write_raw(self, data: bytes) -> None: ...

    def send_ws_output(self) -> None: ...

    def arm_frame_timer(self) -> None: ...

    def disarm(self) -> None: ...


@dataclass(slots=True)
class StoreHealth:
    ok: bool = True
    problem: str = ""


@dataclass
class ServerState:
    settings: Settings
    hub: Hub
    apps: AppCache
    flusher: Flusher
    clock: Callable[[], float] = time.monotonic
    limits: RateLimits = field(default_factory=RateLimits)
    shutting_down: bool = False
    protocols: set[HttpPeer] = field(default_factory=set)
    meter: Meter | None = None  # usage and account quotas (vask.billing); None: nothing metered
    cluster: Replicator | None = None  # this node's part in a cluster (vask.cluster); None: a single node
    http_sessions: dict[str, XhrSession] = field(default_factory=dict)  # pusher-js' HTTP transports, by key/id
    store_health: StoreHealth = field(default_factory=StoreHealth)  # /ready (vask.server.health)
    metrics: DataPlaneMetrics = field(default_factory=DataPlaneMetrics)  # /metrics (vask.server.metrics)
    guard: Guard[HttpPeer] = field(init=False)  # per-address cap and half-open bound (vask.server.guard)

    def __post_init__(self) -> None:
        self.guard = Guard(self.settings)
    stats: StatsRecorder | None = None  # per-minute stats (vask.console.stats); None: not recorded
    stats_query: StatsQuery | None = None  # what the dashboard reads; the live feed is hub.console

    @property
    def console(self) -> ConsoleFeed:
        """The debug console's live feed (one per process; cluster-wide when a broker is configured)."""
        return self.hub.console
