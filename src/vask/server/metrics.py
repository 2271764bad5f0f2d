"""Data-plane metrics with Soketi's names (prefix ``vask_``, label ``app_id``) and HTTP API latency histograms.

Per-connection byte and frame counts live on the Connection (two attribute additions on the hot path, no dict
look-up); they are folded into per-app totals when the connection is gone. A scrape adds the open connections'
counts, walking the open connections: a connection leaves that set in the same step that folds it, so the
counters never go backwards.
"""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from vask.core.connection import Connection

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# HTTP API routes, for a bounded label set (the path holds channel names and user ids).
ROUTES = ("events", "batch_events", "channels", "channel", "channel_users", "terminate_connections", "other")

# Indexes of the per-app counters.
NEW, GONE, RECV_FRAMES, RECV_BYTES, SENT_FRAMES, SENT_BYTES, CALLS, HTTP_IN, HTTP_OUT = range(9)
_COUNTERS = (
    (NEW, "new_connections_total", "counter", "New WebSocket connections accepted."),
    (GONE, "new_disconnections_total", "counter", "WebSocket connections closed."),
    (RECV_BYTES, "socket_received_bytes", "counter", "Bytes received on WebSocket connections."),
    (SENT_BYTES, "socket_transmitted_bytes", "counter", "Bytes written to WebSocket connections."),
    (RECV_FRAMES, "ws_messages_received_total", "counter", "WebSocket messages received."),
    (SENT_FRAMES, "ws_messages_sent_total", "counter", "WebSocket messages sent."),
    (CALLS, "http_calls_received_total", "counter", "HTTP API calls received."),
    (HTTP_IN, "http_received_bytes", "counter", "HTTP API request bytes received (body)."),
    (HTTP_OUT, "http_transmitted_bytes", "counter", "HTTP API response bytes sent (body)."),
)


def route_of(path: str) -> str:
    """/apps/{id}/<route...> → a route name from ROUTES."""
    parts = path.split("/")[3:]  # ['', 'apps', id, ...]
    if parts == ["events"] or parts == ["batch_events"] or parts == ["channels"]:
        return parts[0]
    if len(parts) == 2 and parts[0] == "channels":
        return "channel"
    if len(parts) == 3 and parts[0] == "channels" and parts[2] == "users":
        return "channel_users"
    if len(parts) == 3 and parts[0] == "users" and parts[2] == "terminate_connections":
        return "terminate_connections"
    return "other"


class Histogram:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKETS)
        self.count = 0
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        index = bisect.bisect_left(BUCKETS, seconds)
        if index < len(BUCKETS):
            self.buckets[index] += 1
        self.count += 1
        self.total += seconds


class DataPlaneMetrics:
    def __init__(self) -> None:
        self.apps: dict[str, list[int]] = {}
        self.latency: dict[tuple[str, str], Histogram] = {}

    def _of(self, app_id: str) -> list[int]:
        counters = self.apps.get(app_id)
        if counters is None:
            counters = self.apps[app_id] = [0] * 9
        return counters

    def opened(self, app_id: str) -> None:
        self._of(app_id)[NEW] += 1

    def closed(self, conn: Connection) -> None:
        counters = self._of(conn.app.id)
        counters[GONE] += 1
        counters[RECV_FRAMES] += conn.recv_frames
        counters[RECV_BYTES] += conn.recv_bytes
        counters[SENT_FRAMES] += conn.sent_frames
        counters[SENT_BYTES] += conn.sent_bytes

    def http_call(self, app_id: str, path: str, received: int, sent: int, seconds: float) -> None:
        """An HTTP API call of an existing app (unknown ids are not labels: they would grow without bound)."""
        counters = self._of(app_id)
        counters[CALLS] += 1
        counters[HTTP_IN] += received
        counters[HTTP_OUT] += sent
        key = (app_id, route_of(path))
        histogram = self.latency.get(key)
        if histogram is None:
            histogram = self.latency[key] = Histogram()
        histogram.observe(seconds)

    def render(self, open_connections: Iterable[Connection | None], connected: dict[str, int]) -> list[str]:
        """Prometheus text lines for this process; ``connected``: app id → open connections (the hub's)."""
        totals = {app_id: list(counters) for app_id, counters in self.apps.items()}
        for conn in open_connections:
            if conn is None:
                continue
            counters = totals.setdefault(conn.app.id, [0] * 9)
            counters[RECV_FRAMES] += conn.recv_frames
            counters[RECV_BYTES] += conn.recv_bytes
            counters[SENT_FRAMES] += conn.sent_frames
            counters[SENT_BYTES] += conn.sent_bytes
        lines = ["# HELP vask_connected Open WebSocket connections on this process.",
                 "# TYPE vask_connected gauge"]
        lines += [f'vask_connected{{app_id="{_label(app_id)}"}} {count}' for app_id, count in sorted(connected.items())]
        for index, name, kind, text in _COUNTERS:
            lines += [f"# HELP vask_{name} {text}", f"# TYPE vask_{name} {kind}"]
            lines += [f'vask_{name}{{app_id="{_label(app_id)}"}} {counters[index]}'
                      for app_id, counters in sorted(totals.items())]
        name = "vask_http_request_duration_seconds"
        lines += [f"# HELP {name} Time to answer an HTTP API call, from the end of the request to the response.",
                  f"# TYPE {name} histogram"]
        for (app_id, route), histogram in sorted(self.latency.items()):
            labels = f'app_id="{_label(app_id)}",route="{route}"'
            cumulative = 0
            for bound, count in zip(BUCKETS, histogram.buckets, strict=True):
                cumulative += count
                lines.append(f'{name}_bucket{{{labels},le="{bound:g}"}} {cumulative}')
            lines.append(f'{name}_bucket{{{labels},le="+Inf"}} {histogram.count}')
            lines.append(f"{name}_sum{{{labels}}} {histogram.total:.6f}")
            lines.append(f"{name}_count{{{labels}}} {histogram.count}")
        return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
