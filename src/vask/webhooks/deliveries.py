"""The recent webhook deliveries of each app (status, attempts, last error), for the dashboard's log.

A bounded ring per app in this process's memory: a delivery log to look at, not an audit trail.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

KEEP = 50  # per app


@dataclass(frozen=True, slots=True)
class Delivery:
    at: float
    url: str
    events: tuple[str, ...]
    ok: bool
    attempts: int
    status: int | None
    error: str | None
    retrying: bool

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at, "url": self.url, "events": list(self.events), "ok": self.ok,
                "attempts": self.attempts, "status": self.status, "error": self.error, "retrying": self.retrying}


class DeliveryLog:
    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._apps: dict[str, deque[Delivery]] = {}

    def add(self, app_id: str, url: str, events: list[str], ok: bool, attempts: int, *,
            status: int | None = None, error: str | None = None, retrying: bool = False) -> None:
        ring = self._apps.get(app_id)
        if ring is None:
            ring = self._apps[app_id] = deque(maxlen=self.keep)
        ring.append(Delivery(time.time(), url, tuple(events[:20]), ok, attempts, status, error, retrying))

    def recent(self, app_id: str) -> list[Delivery]:
        """Newest first."""
        return list(reversed(self._apps.get(app_id, ())))
