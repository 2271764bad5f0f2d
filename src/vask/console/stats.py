"""Per-minute stats of each app on this node (broadcasts, deliveries, peak connections), and their queries.

The recorder is an Observer: it hears of each broadcast once (``broadcast``) and of the copies other nodes
delivered (``delivered``), adds them to in-memory counts of the current minute, and writes them to the
StatsStore every ``flush_interval`` seconds. Peak connections: the recorder samples the app's connection
count as this node knows it (cluster-wide on a cluster node: other nodes' last synced counts plus its own
live count) at every new connection and at every flush, and keeps the largest per minute. A crash loses at
most one flush interval of counts, as with usage metering.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vask import tasks
from vask.apps.base import App
from vask.console.stats_store import Counts, StatsRow, StatsStore
from vask.core.observer import Observer

if TYPE_CHECKING:
    from vask.cluster.node import Node
    from vask.core.hub import Hub

log = logging.getLogger("vask.stats")

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class StatsRecorder(Observer):
    def __init__(self, store: StatsStore, node: str = "local", *, hub: Hub | None = None,
                 clock: Callable[[], float] = time.time, flush_interval: float = 10.0,
                 minute_retention: float = 48 * 3600.0) -> None:
        self.store = store
        self.node = node
        self.hub = hub
        self.clock = clock  # wall-clock seconds: minutes and days are UTC calendar units
        self.flush_interval = flush_interval
        self.minute_retention = minute_retention
        self.pending: dict[tuple[int, str], list[int]] = {}  # (minute, app) → [broadcasts, deliveries, peak]
        self._pruned = 0.0
        self._task: asyncio.Task[None] | None = None
        self._lock: asyncio.Lock | None = None
        self.failed_flushes = 0

    # -- Observer hooks (once per broadcast, never per delivery) --------------------------------

    def _row(self, app_id: str) -> list[int]:
        key = (int(self.clock() // 60) * 60, app_id)
        row = self.pending.get(key)
        if row is None:
            row = self.pending[key] = [0, 0, self._connections(app_id)]
        return row

    def broadcast(self, app: App, channel: str, deliveries: int) -> None:
        row = self._row(app.id)
        row[0] += 1
        row[1] += deliveries

    def delivered(self, app: App, channel: str, deliveries: int) -> None:
        self._row(app.id)[1] += deliveries

    def connections(self, app_id: str, count: int) -> None:
        """The app's connection count right now (called when one opens, and by ``sample``)."""
        row = self._row(app_id)
        if count > row[2]:
            row[2] = count

    def _connections(self, app_id: str) -> int:
        return self.hub.app_connections(app_id) if self.hub is not None else 0

    def sample(self) -> None:
        """Carry each connected app's count into the current minute: a quiet minute still has its peak."""
        if self.hub is not None:
            for app_id in list(self.hub.apps):
                self.connections(app_id, self.hub.app_connections(app_id))

    # -- writing -------------------------------------------------------------------------------

    def take(self) -> list[StatsRow]:
        pending, self.pending = self.pending, {}
        return [StatsRow(app, minute, self.node, b, d, peak) for (minute, app), (b, d, peak) in pending.items()]

    def restore(self, rows: list[StatsRow]) -> None:
        """Rows whose write failed: merged back, written with the next flush."""
        for r in rows:
            row = self.pending.setdefault((r.minute, r.app_id), [0, 0, 0])
            row[0] += r.broadcasts
            row[1] += r.deliveries
            row[2] = max(row[2], r.peak_connections)

    async def flush(self) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            self.sample()
            rows = self.take()
            if not rows:
                return
            try:
                await asyncio.to_thread(self.store.record, rows)
            except Exception as exc:
                self.failed_flushes += 1
                log.warning("could not write stats (%s); retrying with the next flush", exc)
                self.restore(rows)
                return
            now = self.clock()
            if now - self._pruned >= 3600:
                self._pruned = now
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.store.prune_minutes, int(now - self.minute_retention))

    async def start(self) -> None:
        self._task = tasks.spawn(self._loop(), "stats-flush")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception:
                log.exception("stats flush failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()  # the last counts, since the last periodic flush

    def unflushed(self, app_id: str) -> dict[int, Counts]:
        return {minute: (b, d, p) for (minute, app), (b, d, p) in self.pending.items() if app == app_id}


def parse_month(month: str) -> tuple[int, int]:
    found = MONTH_RE.match(month)
    if found is None:
        raise ValueError(f"month must be YYYY-MM, not {month!r}")
    return int(found.group(1)), int(found.group(2))


class StatsQuery:
    """What the dashboard reads: live counts (cluster-wide on a cluster node) and the stored series."""

    def __init__(self, store: StatsStore, hub: Hub, recorder: StatsRecorder | None = None, *,
                 node: str = "local", region: str = "", clock: Callable[[], float] = time.time,
                 cluster: Node | None = None) -> None:
        self.store = store
        self.hub = hub
        self.cluster = cluster
        self.recorder = recorder
        self.node = node
        self.region = region
        self.clock = clock

    async def live(self, app_id: str) -> dict[str, Any]:
        state = self.hub.apps.get(app_id)
        local = len(state.connections) if state is not None else 0
        channels = len(state.channels) if state is not None else 0
        if self.cluster is None:
            return {"connections": local, "by_node": {self.node: local}, "by_region": {self.region: local},
                    "channels_occupied": channels}
        from vask.console.live import cluster_live

        return await cluster_live(self.cluster, app_id, local, channels)

    def _merged(self, stored: dict[int, Counts], app_id: str) -> dict[int, Counts]:
        if self.recorder is None:
            return stored
        out = dict(stored)
        for minute, (b, d, p) in self.recorder.unflushed(app_id).items():
            sb, sd, sp = out.get(minute, (0, 0, 0))
            out[minute] = (sb + b, sd + d, max(sp, p))
        return out

    async def minutes(self, app_id: str, since: float, until: float) -> list[dict[str, Any]]:
        """One entry per minute from ``since``'s minute up to ``until``'s (included), zeros filled."""
        first, last = int(since // 60) * 60, int(until // 60) * 60
        if last < first:
            raise ValueError("until is before since")
        if (last - first) // 60 > 7 * 24 * 60:
            raise ValueError("at most 7 days of minutes at once: use days() for longer spans")
        stored = await asyncio.to_thread(self.store.minute_counts, app_id, first, last + 60)
        counts = self._merged(stored, app_id)
        return [_entry(minute, counts.get(minute)) for minute in range(first, last + 60, 60)]

    async def days(self, app_id: str, month: str) -> list[dict[str, Any]]:
        """One entry per day of ``month`` ("YYYY-MM"), zeros filled; "at" is the day's start (unix, UTC)."""
        year, number = parse_month(month)
        days = calendar.monthrange(year, number)[1]
        stored = await asyncio.to_thread(self.store.day_counts, app_id, f"{month}-01", f"{month}-{days:02d}")
        merged = dict(stored)
        if self.recorder is not None:
            for minute, (b, d, p) in self.recorder.unflushed(app_id).items():
                day = datetime.fromtimestamp(minute, UTC).strftime("%Y-%m-%d")
                if day.startswith(month):
                    sb, sd, sp = merged.get(day, (0, 0, 0))
                    merged[day] = (sb + b, sd + d, max(sp, p))
        out = []
        for number_of_day in range(1, days + 1):
            day = f"{month}-{number_of_day:02d}"
            start = calendar.timegm((year, number, number_of_day, 0, 0, 0))
            entry = _entry(start, merged.get(day))
            entry["day"] = day
            out.append(entry)
        return out

    async def peak_connections(self, app_id: str, month: str) -> int:
        days = await self.days(app_id, month)
        peak = max((d["peak_connections"] for d in days), default=0)
        if month == datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m"):
            peak = max(peak, self.hub.app_connections(app_id))
        return int(peak)


def _entry(at: int, counts: Counts | None) -> dict[str, Any]:
    b, d, p = counts or (0, 0, 0)
    return {"at": at, "broadcasts": b, "deliveries": d, "peak_connections": p}
