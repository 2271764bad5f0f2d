"""Per-minute stats: aggregation with a fake clock, the sum over nodes, zero-filled series, failed writes."""

from __future__ import annotations

import calendar
from typing import Any

import pytest

from vask.apps.base import App
from vask.console.stats import StatsQuery, StatsRecorder, parse_month
from vask.console.stats_store import MemoryStatsStore, StatsRow

pytestmark = pytest.mark.asyncio(loop_scope="function")

T0 = calendar.timegm((2026, 3, 31, 23, 58, 10))  # two minutes before a month (and day) boundary
APP = App(id="app1", key="k1", secret="s1")
OTHER = App(id="app2", key="k2", secret="s2")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Connections:
    """The two things the recorder reads off a hub: which apps have connections here, and how many."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    @property
    def apps(self) -> dict[str, Any]:
        return {app_id: None for app_id, n in self.counts.items() if n}

    def app_connections(self, app_id: str) -> int:
        return self.counts.get(app_id, 0)


def recorder(store: Any, clock: Clock, node: str = "n1", hub: Any = None) -> StatsRecorder:
    return StatsRecorder(store, node, hub=hub, clock=clock)


async def test_broadcasts_and_deliveries_per_minute_zero_filled() -> None:
    clock, store, hub = Clock(T0), MemoryStatsStore(), Connections()
    rec = recorder(store, clock, hub=hub)
    query = StatsQuery(store, hub, rec, clock=clock)  # type: ignore[arg-type]
    rec.broadcast(APP, "c", 10)
    rec.broadcast(APP, "c", 5)
    rec.delivered(APP, "c", 3)  # copies another node's broadcast reached here
    rec.broadcast(OTHER, "c", 100)
    clock.now += 120  # two minutes later: 2026-04-01 00:00:10
    rec.broadcast(APP, "c", 1)
    first = T0 // 60 * 60
    series = await query.minutes("app1", first, clock.now)
    assert [(e["at"] - first, e["broadcasts"], e["deliveries"]) for e in series] == [
        (0, 2, 18), (60, 0, 0), (120, 1, 1)]  # read before any flush: the unflushed counts are included
    await rec.flush()
    assert rec.pending == {}
    assert await query.minutes("app1", first, clock.now) == series
    assert (await query.minutes("app2", first, first))[0]["deliveries"] == 100


async def test_peak_connections_sampled_at_opens_and_flushes() -> None:
    clock, store, hub = Clock(T0), MemoryStatsStore(), Connections()
    rec = recorder(store, clock, hub=hub)
    query = StatsQuery(store, hub, rec, clock=clock)  # type: ignore[arg-type]
    for n in (1, 2, 3):
        hub.counts["app1"] = n
        rec.connections("app1", n)
    hub.counts["app1"] = 1  # two left within the same minute
    await rec.flush()
    clock.now += 60  # a quiet minute: nobody connects, one connection stays open
    await rec.flush()
    series = await query.minutes("app1", T0, clock.now)
    assert [e["peak_connections"] for e in series] == [3, 1]
    assert [e["broadcasts"] for e in series] == [0, 0]


async def test_nodes_are_summed_and_the_peak_is_the_largest_seen() -> None:
    clock, store = Clock(T0), MemoryStatsStore()
    one, two = recorder(store, clock, "n1"), recorder(store, clock, "n2")
    one.broadcast(APP, "c", 4)  # published on n1, 4 subscribers there ...
    two.delivered(APP, "c", 6)  # ... and 6 on n2
    two.broadcast(APP, "c", 0)
    one.connections("app1", 10)  # each node records the cluster-wide count it knows
    two.connections("app1", 9)
    await one.flush()
    await two.flush()
    query = StatsQuery(store, Connections(), clock=clock)  # type: ignore[arg-type]
    (entry,) = await query.minutes("app1", T0, T0)
    assert entry == {"at": T0 // 60 * 60, "broadcasts": 2, "deliveries": 10, "peak_connections": 10}


async def test_days_of_a_month_and_the_months_peak() -> None:
    clock, store, hub = Clock(T0), MemoryStatsStore(), Connections()
    rec = recorder(store, clock, hub=hub)
    query = StatsQuery(store, hub, rec, clock=clock)  # type: ignore[arg-type]
    rec.broadcast(APP, "c", 2)
    rec.connections("app1", 7)
    await rec.flush()
    clock.now += 120  # April
    rec.broadcast(APP, "c", 3)
    rec.broadcast(APP, "c", 3)
    rec.connections("app1", 4)
    march = await query.days("app1", "2026-03")
    assert len(march) == 31 and march[0] == {"at": calendar.timegm((2026, 3, 1, 0, 0, 0)), "broadcasts": 0,
                                             "deliveries": 0, "peak_connections": 0, "day": "2026-03-01"}
    assert march[30]["broadcasts"] == 1 and march[30]["peak_connections"] == 7
    april = await query.days("app1", "2026-04")
    assert len(april) == 30 and april[0]["broadcasts"] == 2 and april[0]["deliveries"] == 6  # not flushed yet
    assert await query.peak_connections("app1", "2026-03") == 7
    assert await query.peak_connections("app1", "2026-04") == 4
    assert len(await query.days("app1", "2024-02")) == 29


@pytest.mark.parametrize("month", ["2026-13", "2026-4", "april", ""])
async def test_bad_month(month: str) -> None:
    query = StatsQuery(MemoryStatsStore(), Connections())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="YYYY-MM"):
        await query.days("app1", month)
    with pytest.raises(ValueError):
        parse_month(month)


async def test_bad_minute_ranges() -> None:
    query = StatsQuery(MemoryStatsStore(), Connections())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="before"):
        await query.minutes("app1", T0, T0 - 120)
    with pytest.raises(ValueError, match="at most 7 days"):
        await query.minutes("app1", T0 - 8 * 86400, T0)


class FlakyStore(MemoryStatsStore):
    def __init__(self) -> None:
        super().__init__()
        self.fail = 1

    def record(self, rows: list[StatsRow]) -> None:
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")
        super().record(rows)


async def test_a_failed_write_is_kept_and_written_with_the_next() -> None:
    clock, store = Clock(T0), FlakyStore()
    rec = recorder(store, clock)
    rec.broadcast(APP, "c", 1)
    await rec.flush()
    assert rec.failed_flushes == 1
    rec.broadcast(APP, "c", 1)
    await rec.flush()
    assert store.minute_counts("app1", 0, T0 + 60) == {T0 // 60 * 60: (2, 2, 0)}
