"""The live feed behind the debug console: per-app viewers, a speed limit each, cluster-wide over the broker.

Cost while nobody watches: emit points call ``watching(app_id)`` (a set look-up) once per event and build
nothing when it is False. Deliveries to subscribers never reach this module.

Cluster-wide: a node with viewers announces the apps they watch on the console bus (a Broker of its own, on
the cluster's engine under ``<prefix>_console``) every ``watch_interval`` seconds and at once on a change.
Every node then emits those apps' events and sends them on the bus; an announcement is believed for
``3 * watch_interval`` seconds, so when a viewer's node dies its peers stop sending within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson

from vask import tasks
from vask.broker.base import Broker, BrokerUnavailable
from vask.console.events import ConsoleEvent
from vask.console.filters import ConsoleFilter

log = logging.getLogger("vask.console")

VIEWER_QUEUE = 1000  # events waiting for a viewer that does not read; more are dropped and counted
OUTGOING_LIMIT = 10_000  # events waiting for the bus during a broker outage


class Viewer:
    """One open console: the events of one app that pass its filter, at most ``max_per_second``."""

    def __init__(self, feed: ConsoleFeed, app_id: str, flt: ConsoleFilter, max_per_second: float,
                 clock: Callable[[], float]) -> None:
        self.feed = feed
        self.app_id = app_id
        self.filter = flt
        self.rate = max_per_second
        self.clock = clock
        self.dropped = 0  # events skipped by the speed limit (or because the viewer stopped reading)
        self.delivered = 0
        self.closed = False
        self._tokens = max(max_per_second, 1.0)
        self._at = clock()
        self._queue: deque[ConsoleEvent] = deque()
        self._ready = asyncio.Event()

    def offer(self, event: ConsoleEvent) -> None:
        if self.closed or not self.filter.matches(event):
            return
        now = self.clock()
        burst = max(self.rate, 1.0)
        self._tokens = min(burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0 or len(self._queue) >= VIEWER_QUEUE:
            self.dropped += 1
            return
        self._tokens -= 1.0
        self._queue.append(event)
        self._ready.set()

    def __aiter__(self) -> AsyncIterator[ConsoleEvent]:
        return self

    async def __anext__(self) -> ConsoleEvent:
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        self.delivered += 1
        return self._queue.popleft()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._ready.set()  # wakes a pending __anext__, which then stops
        self.feed._remove(self)


class ConsoleFeed:
    def __init__(self, node: str = "local", region: str = "", broker: Broker | None = None, *,
                 watch_interval: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, log_events: bool | None = None,
                 max_per_second: float = 50.0) -> None:
        self.node = node
        self.region = region
        self.broker = broker
        self.watch_interval = watch_interval
        self.max_per_second = max_per_second  # the configured speed limit, for callers of subscribe()
        self.clock = clock
        self.wall = wall
        # With log_level=debug every event is logged, so every app counts as watched.
        self.log_events = log.isEnabledFor(logging.DEBUG) if log_events is None else log_events
        self.watched: set[str] = set()  # apps watched on this node or elsewhere: the set emit points check
        self.viewers: dict[str, set[Viewer]] = {}
        self.remote: dict[str, tuple[frozenset[str], float]] = {}  # node → (apps, believed until)
        self.remote_apps: set[str] = set()
        self.received = 0  # events that came from other nodes (for tests and metrics)
        self.emitted = 0  # emit() calls: stays 0 while nobody watches, as emit points check watching() first
        self._outgoing: deque[bytes] = deque()
        self._wake = asyncio.Event() if broker is not None else None
        self._tasks: list[asyncio.Task[None]] = []

    # -- the emit side -------------------------------------------------------------------------

    def watching(self, app_id: str) -> bool:
        return self.log_events or app_id in self.watched

    @property
    def active(self) -> bool:
        """Some app is watched somewhere: emit points that must gather data first (an Origin header) ask."""
        return self.log_events or bool(self.watched)

    def note(self, app_id: str, kind: str, channel: str | None = None, socket_id: str | None = None,
             **details: Any) -> None:
        """Build and emit an event stamped with this node; call it only after ``watching`` said True."""
        self.emit(ConsoleEvent(app_id, kind, self.wall(), self.node, self.region, channel, socket_id,
                               {k: v for k, v in details.items() if v is not None}))

    def emit(self, event: ConsoleEvent) -> None:
        self.emitted += 1
        app_id = event.app_id
        if not (self.log_events or app_id in self.watched):
            return
        try:  # emit points sit in the data plane: a console bug must never cost a client anything
            if self.log_events:
                log_event(event)
            self._offer(event)
            if self.broker is not None and app_id in self.remote_apps:
                self._send(orjson.dumps({"k": "ev", "o": self.node, "e": event.to_dict()}, default=str))
        except Exception:
            log.exception("console: could not emit a %s event", event.type)

    def _offer(self, event: ConsoleEvent) -> None:
        for viewer in list(self.viewers.get(event.app_id, ())):
            viewer.offer(event)

    # -- viewers -------------------------------------------------------------------------------

    def subscribe(self, app_id: str, flt: ConsoleFilter | None = None, max_per_second: float = 50.0) -> Viewer:
        if max_per_second <= 0:
            raise ValueError("max_per_second must be above 0")
        viewer = Viewer(self, app_id, flt or ConsoleFilter(), max_per_second, self.clock)
        viewers = self.viewers.setdefault(app_id, set())
        first = not viewers
        viewers.add(viewer)
        if first:
            self._recompute()
            self._announce()
        return viewer

    def _remove(self, viewer: Viewer) -> None:
        viewers = self.viewers.get(viewer.app_id)
        if viewers is None or viewer not in viewers:
            return
        viewers.discard(viewer)
        if not viewers:
            del self.viewers[viewer.app_id]
            self._recompute()
            self._announce()

    def _recompute(self) -> None:
        now = self.clock()
        self.remote = {node: entry for node, entry in self.remote.items() if entry[1] > now}
        self.remote_apps = set().union(*(apps for apps, _ in self.remote.values()))
        self.watched = set(self.viewers) | self.remote_apps

    # -- the bus -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self.broker is None:
            return
        await self.broker.start(self.receive, self._reconnected)
        self._tasks = [tasks.spawn(self._send_loop(), "console-send"), tasks.spawn(self._watch_loop(), "console-watch")]

    async def close(self) -> None:
        for viewers in list(self.viewers.values()):
            for viewer in list(viewers):
                viewer.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.broker is not None:
            await self.broker.close()

    async def _reconnected(self) -> None:
        self._announce()

    def _announce(self) -> None:
        if self.broker is None:
            return
        ttl = 3 * self.watch_interval
        self._send(orjson.dumps({"k": "watch", "o": self.node, "apps": sorted(self.viewers), "ttl": ttl}))

    def _send(self, payload: bytes) -> None:
        if len(self._outgoing) >= OUTGOING_LIMIT:  # a broker outage must not grow memory
            self._outgoing.popleft()
        self._outgoing.append(payload)
        assert self._wake is not None
        self._wake.set()

    async def _send_loop(self) -> None:
        assert self._wake is not None and self.broker is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outgoing:
                try:
                    await self.broker.publish(self._outgoing[0])
                except BrokerUnavailable:
                    await asyncio.sleep(0.2)
                    continue
                except Exception:
                    log.exception("console bus: could not publish")
                self._outgoing.popleft()

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(self.watch_interval)
            if self.viewers:
                self._announce()
            self._recompute()  # forgets nodes whose announcements stopped (their viewers' node died)

    def receive(self, payload: bytes) -> None:
        """A message from the console bus (every node's, this node's own included)."""
        try:
            message = orjson.loads(payload)
            if not isinstance(message, dict) or message.get("o") == self.node:
                return
            kind = message.get("k")
            if kind == "watch":
                apps = frozenset(str(a) for a in message["apps"])
                ttl = min(float(message.get("ttl", 3 * self.watch_interval)), 300.0)
                if apps:
                    self.remote[str(message["o"])] = (apps, self.clock() + ttl)
                else:
                    self.remote.pop(str(message["o"]), None)
                self._recompute()
            elif kind == "ev":
                event = ConsoleEvent.from_dict(message["e"])
                self.received += 1
                self._offer(event)  # not logged again here: its own node logged it
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("malformed console bus message ignored")


def log_event(event: ConsoleEvent) -> None:
    """The debug log line of one console event (JSON fields under "event" with log_format=json)."""
    details = " ".join(f"{k}={_short(v)}" for k, v in event.details.items())
    log.debug("%s app=%s%s%s node=%s%s", event.type, event.app_id,
              f" channel={event.channel}" if event.channel is not None else "",
              f" socket_id={event.socket_id}" if event.socket_id is not None else "",
              event.node, f" {details}" if details else "", extra={"console": event.to_dict()})


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return text if len(text) <= 200 else text[:200] + "…"
