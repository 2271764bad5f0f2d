"""What goes in the next request of a webhook target's lane, and when; and the retry schedule.

Pure logic with the time passed in. A lane sends one request at a time, so its events reach the receiver
in order even across retries. Without batching a target has a few lanes, each channel always using the same
one, and a request carries one event. With batching the target has one lane and a request carries the
events that arrived within ``window`` seconds of the first one, at most ``limit``; events that piled up
while an earlier request was in flight go together in the next one.
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from vask.webhooks.events import Event


def lane_of(channel: str, lanes: int) -> int:
    """A stable lane per channel (crc32, not hash(): the same in every process, which helps reading logs)."""
    return zlib.crc32(channel.encode()) % lanes


@dataclass(slots=True)
class Lane:
    waiting: deque[tuple[float, Event]] = field(default_factory=deque)  # (queued at, event)
    in_flight: int = 0  # events taken for the request being sent or retried
    task: Any = None  # the asyncio task draining this lane, while one runs
    wake: Any = None  # its asyncio.Event: set when a batch fills up or a shutdown starts

    def __len__(self) -> int:
        return len(self.waiting)

    def push(self, event: Event, now: float) -> None:
        self.waiting.append((now, event))

    def ready_at(self, batch: bool, window: float, limit: int) -> float | None:
        """When the next request may go: None when nothing waits; a past time means now."""
        if not self.waiting:
            return None
        first = self.waiting[0][0]
        if not batch or len(self.waiting) >= limit:
            return first
        return first + window

    def take(self, batch: bool, limit: int) -> tuple[list[Event], float]:
        """The events of the next request and when the oldest of them happened."""
        count = min(len(self.waiting), limit if batch else 1)
        taken = [self.waiting.popleft() for _ in range(count)]
        return [event for _, event in taken], taken[0][0]


def backoff(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Pause after failed attempt number ``attempt`` (1-based): exponential, capped, with jitter.

    The jitter keeps the pause in [half, full] of the exponential value, so retries of many webhooks that
    failed together spread out but still grow.
    """
    full: float = min(cap, base * 2.0 ** min(attempt - 1, 32))
    jitter: float = (rng or random).random()
    return full * (0.5 + 0.5 * jitter)


def keep_retrying(first_event_at: float, now: float, pause: float, retry_for: float) -> bool:
    """Whether to retry after ``pause``: only while the oldest event is within ``retry_for`` seconds."""
    return now + pause - first_event_at <= retry_for
