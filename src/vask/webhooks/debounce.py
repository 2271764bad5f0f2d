"""The webhook delay for channel_vacated and member_removed, and cache_miss de-duplication.

Pure logic: every method takes the current time, so tests drive it with numbers and no event loop.

Pusher waits "up to three seconds" before channel_vacated and member_removed and sends neither when the
client comes back within the delay (pusher-protocol.md §3.1). Here a vacate or a removal waits ``delay``
seconds in its channel's queue; a channel_occupied (or member_added for the same user) arriving meanwhile
deletes it and is itself not sent, as Poxa does. Events of a channel leave in the order they happened: an
event arriving while an earlier one of the same channel is held waits behind it (so a member_added of
another user may wait up to ``delay``). Channels with nothing held pass their events straight through.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from vask.webhooks.events import CANCELS, DELAYED, MEMBER_REMOVED, Event

T = TypeVar("T")


@dataclass(slots=True)
class Held(Generic[T]):
    event: Event
    tag: T  # what the caller needs to route the event later (the app)
    due: float


class Debouncer(Generic[T]):
    def __init__(self, delay: float, limit: int) -> None:
        self.delay = delay
        self.limit = limit  # events held in all; beyond it new ones are refused (counted in ``overflow``)
        self.channels: dict[Hashable, deque[Held[T]]] = {}
        self.size = 0
        self.cancelled = 0  # pairs that cancelled each other (neither webhook sent)
        self.overflow = 0
        self._timers: list[tuple[float, int, Hashable]] = []  # (due, seq, channel); stale entries are skipped
        self._seq = itertools.count()

    def push(self, channel: Hashable, event: Event, tag: T, now: float) -> list[tuple[T, Event]]:
        """Take one event of ``channel`` (e.g. ``(app_id, name)``); return the events that can go now, in order."""
        queue = self.channels.get(channel)
        cancels = CANCELS.get(event["name"])
        if cancels is not None and queue and self._cancel(queue, cancels, event.get("user_id")):
            self.cancelled += 1
            return self._release(channel, queue, now)
        delayed = event["name"] in DELAYED and self.delay > 0
        if not delayed and not queue:
            return [(tag, event)]
        if self.size >= self.limit:
            self.overflow += 1
            return []
        if queue is None:
            queue = self.channels[channel] = deque()
        due = now + self.delay if delayed else now
        queue.append(Held(event, tag, due))
        self.size += 1
        if delayed:
            heapq.heappush(self._timers, (due, next(self._seq), channel))
        return []

    def _cancel(self, queue: deque[Held[T]], name: str, user_id: str | None) -> bool:
        # The latest matching held event is the one a re-join answers.
        for index in range(len(queue) - 1, -1, -1):
            held = queue[index].event
            if held["name"] == name and (name != MEMBER_REMOVED or held.get("user_id") == user_id):
                del queue[index]
                self.size -= 1
                return True
        return False

    def _release(self, channel: Hashable, queue: deque[Held[T]], now: float) -> list[tuple[T, Event]]:
        out: list[tuple[T, Event]] = []
        while queue and queue[0].due <= now:
            held = queue.popleft()
            out.append((held.tag, held.event))
        self.size -= len(out)
        if not queue:
            del self.channels[channel]
        return out

    def next_due(self) -> float | None:
        """When ``pop_due`` may have something to release (possibly early: it is then a no-op)."""
        while self._timers and self._timers[0][2] not in self.channels:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def pop_due(self, now: float) -> list[tuple[T, Event]]:
        """The events whose delay has passed, with those that waited behind them."""
        out: list[tuple[T, Event]] = []
        while self._timers and self._timers[0][0] <= now:
            _, _, channel = heapq.heappop(self._timers)
            queue = self.channels.get(channel)
            if queue is not None:
                out += self._release(channel, queue, now)
        return out

    def drain(self) -> list[tuple[T, Event]]:
        """Everything held, in order per channel, without waiting (shutdown: no re-join can come any more)."""
        out = [(held.tag, held.event) for queue in self.channels.values() for held in queue]
        self.channels.clear()
        self._timers.clear()
        self.size = 0
        return out


class Deduper:
    """True the first time a key is seen within ``window`` seconds (cache_miss: Pusher sends one webhook when
    several clients subscribe to an empty cache channel). Per process: in a cluster each node that sees
    the miss may send one."""

    def __init__(self, window: float, max_keys: int = 100_000) -> None:
        self.window = window
        self.max_keys = max_keys
        self.seen: dict[Hashable, float] = {}  # key → when it was first sent; insertion order = time order
        self.suppressed = 0

    def first(self, key: Hashable, now: float) -> bool:
        self._expire(now)
        if key in self.seen:
            self.suppressed += 1
            return False
        if len(self.seen) >= self.max_keys:  # bounded: forget the oldest rather than grow
            del self.seen[next(iter(self.seen))]
        self.seen[key] = now
        return True

    def _expire(self, now: float) -> None:
        while self.seen:
            key, at = next(iter(self.seen.items()))
            if now - at < self.window:
                return
            del self.seen[key]
