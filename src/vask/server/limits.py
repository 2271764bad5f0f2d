"""Per-app rate limits of the HTTP API (per node: each node keeps its own buckets)."""

from __future__ import annotations

import time

import orjson

from vask.protocol import rest
from vask.server.messages import Response


class RateLimits:
    """Per-app token buckets for HTTP publishes (events/s) and reads (requests/s); 429 above them."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def check(self, call: rest.RestCall) -> Response | None:
        settings = call.app.settings
        if call.is_read:
            rate, kind, cost = settings.max_read_requests_per_second, "read", 1
        else:
            rate, kind, cost = settings.max_backend_events_per_second, "publish", call.broadcasts
        if rate is None or cost == 0:
            return None
        now = time.monotonic()
        tokens, at = self.buckets.get((call.app.id, kind), (float(rate), now))
        tokens = min(float(rate), tokens + (now - at) * rate)
        if tokens < cost:
            self.buckets[(call.app.id, kind)] = (tokens, now)
            return Response(429, orjson.dumps({"error": f"Rate limit exceeded: at most {rate} {kind} "
                                               f"{'requests' if kind == 'read' else 'events'} per second "
                                               f"for app {call.app.id}", "code": 429}))
        self.buckets[(call.app.id, kind)] = (tokens - cost, now)
        return None
