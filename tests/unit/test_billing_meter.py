"""The meter on an in-memory ledger with an injected clock: counting, quotas, months, flushing, warnings."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from vask.apps.base import App
from vask.billing.base import AppUsage, UsageBatch
from vask.billing.memory import MemoryBillingStore
from vask.billing.meter import Meter
from vask.billing.plans import Account, Plan
from vask.core.observer import Observers

ACME_1 = App(id="a1", key="k1", secret="s", account_id="acme")
ACME_2 = App(id="a2", key="k2", secret="s", account_id="acme")
DEFAULT_APP = App(id="d1", key="kd", secret="s")


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2025, 6, 15, 12, 0, 0))


@pytest.fixture
def store() -> MemoryBillingStore:
    store = MemoryBillingStore()
    store.put_plan(Plan(name="tiny", included_broadcasts=5, max_connections=3))
    store.put_plan(Plan(name="paid", monthly_fee_cents=1_000, included_broadcasts=5, max_connections=3,
                        overage_cents_per_million=100))
    store.put_plan(Plan(name="ten", included_broadcasts=10, max_connections=5))
    store.create_account(Account(id="acme", plan="tiny"))
    return store


def meter_for(store: MemoryBillingStore, clock: Clock) -> Meter:
    meter = Meter(store, clock=clock, refresh_interval=0.0)
    meter.load()
    return meter


def publish(meter: Meter, app: App, n: int = 1, deliveries: int = 0) -> None:
    for _ in range(n):
        meter.broadcast(app, "ch", deliveries)


def test_counts_broadcasts_and_deliveries_per_app(store: MemoryBillingStore, clock: Clock) -> None:
    meter = meter_for(store, clock)
    publish(meter, ACME_1, 2, deliveries=5)
    publish(meter, ACME_2, 1, deliveries=0)
    publish(meter, DEFAULT_APP, 3, deliveries=1)
    meter.delivered(ACME_1, "ch", 7)  # copies delivered here for a broadcast counted on another node
    meter.flush_now()
    assert store.app_usage("2025-06") == [AppUsage("acme", "a1", "2025-06", 2, 17, 0),
                                          AppUsage("acme", "a2", "2025-06", 1, 0, 0),
                                          AppUsage("default", "d1", "2025-06", 3, 3, 0)]
    assert meter.stats()["broadcasts_total"] == 6 and meter.stats()["deliveries_total"] == 20


def test_hard_quota_refuses_at_the_exact_boundary(store: MemoryBillingStore, clock: Clock) -> None:
    meter = meter_for(store, clock)
    publish(meter, ACME_1, 3)
    assert meter.refuse_broadcasts(ACME_2, 2) is None  # 3 + 2 = 5: allowed
    reason = meter.refuse_broadcasts(ACME_2, 3)  # 3 + 3 > 5: the whole request is refused
    assert reason is not None
    assert "Over message quota" in reason and "5 broadcasts" in reason and "plan tiny" in reason
    publish(meter, ACME_2, 2)
    assert meter.refuse_broadcasts(ACME_1, 1) is not None
    assert meter.refuse_broadcasts(DEFAULT_APP, 1_000_000) is None  # the default account is unlimited
    assert meter.stats()["refused_requests"] == 2 and meter.stats()["refused_broadcasts"] == 4


def test_paid_plans_keep_publishing(store: MemoryBillingStore, clock: Clock) -> None:
    store.update_account(Account(id="acme", plan="paid"))
    meter = meter_for(store, clock)
    publish(meter, ACME_1, 8)
    assert meter.refuse_broadcasts(ACME_1, 10) is None


def test_accounts_not_loaded_yet_are_not_limited(store: MemoryBillingStore, clock: Clock) -> None:
    meter = meter_for(store, clock)
    stranger = App(id="x", key="kx", secret="s", account_id="created-after-load")
    publish(meter, stranger, 10)
    assert meter.refuse_broadcasts(stranger, 1) is None
    assert meter.connection_refusal(stranger) is None


def test_usage_survives_a_restart(store: MemoryBillingStore, clock: Clock) -> None:
    first = meter_for(store, clock)
    publish(first, ACME_1, 4)
    first.flush_now()
    second = meter_for(store, clock)
    assert second.refuse_broadcasts(ACME_1, 1) is None
    assert second.refuse_broadcasts(ACME_1, 2) is not None


def test_unflushed_usage_is_what_a_crash_loses(store: MemoryBillingStore, clock: Clock) -> None:
    first = meter_for(store, clock)
    publish(first, ACME_1, 2)
    first.flush_now()
    publish(first, ACME_1, 2)  # counted, never written: the process is killed before the next flush
    assert store.month_totals("2025-06") == {"acme": 2}
    assert first.stats()["unflushed_broadcasts"] == 2


def test_two_processes_see_each_other_after_a_flush(store: MemoryBillingStore, clock: Clock) -> None:
    one, two = meter_for(store, clock), meter_for(store, clock)
    publish(one, ACME_1, 3)
    assert two.refuse_broadcasts(ACME_1, 3) is None  # two has not heard of one's broadcasts yet
    one.flush_now()
    two.flush_now()  # reads the ledger's totals back
    assert two.refuse_broadcasts(ACME_1, 3) is not None
    assert two.refuse_broadcasts(ACME_1, 2) is None
    publish(two, ACME_2, 2)
    two.flush_now()
    one.flush_now()
    assert store.month_totals("2025-06") == {"acme": 5}
    assert one.refuse_broadcasts(ACME_1, 1) is not None


def test_a_failed_write_is_kept_and_counted_once(store: MemoryBillingStore, clock: Clock) -> None:
    meter = meter_for(store, clock)
    real = store.record
    calls = 0

    def flaky(batch: UsageBatch) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return real(batch)

    store.record = flaky  # type: ignore[method-assign]
    publish(meter, ACME_1, 3, deliveries=2)
    meter.flush_now()
    assert meter.stats()["failed_flushes"] == 1
    assert store.app_usage("2025-06") == []
    assert meter.refuse_broadcasts(ACME_1, 2) is None and meter.refuse_broadcasts(ACME_1, 3) is not None
    publish(meter, ACME_1, 1, deliveries=1)
    meter.flush_now()
    assert store.app_usage("2025-06") == [AppUsage("acme", "a1", "2025-06", 4, 7, 0)]
    assert meter.refuse_broadcasts(ACME_1, 1) is None and meter.refuse_broadcasts(ACME_1, 2) is not None


def test_a_write_whose_answer_was_lost_is_not_counted_twice(store: MemoryBillingStore, clock: Clock) -> None:
    # The database committed the batch, then died before saying so (kill -9 during COMMIT): the meter sees an
    # error and writes the batch again; the ledger must hold every broadcast once. CI's chaos test found 274
    # broadcasts recorded for 265 published before this.
    meter = meter_for(store, clock)
    real = store.record
    lost = {"answers": 2}

    def commits_then_fails(batch: UsageBatch) -> bool:
        recorded = real(batch)
        if lost["answers"]:
            lost["answers"] -= 1
            raise ConnectionError("server closed the connection unexpectedly")
        return recorded

    store.record = commits_then_fails  # type: ignore[method-assign]
    publish(meter, ACME_1, 2)
    meter.flush_now()  # written, answer lost
    publish(meter, ACME_1, 1)
    meter.flush_now()  # the same batch again (a no-op in the store), answer lost again; the new one waits
    assert meter.stats()["failed_flushes"] == 2 and meter.stats()["unflushed_broadcasts"] == 3
    publish(meter, ACME_1, 1)
    meter.flush_now()
    meter.flush_now()
    assert store.app_usage("2025-06") == [AppUsage("acme", "a1", "2025-06", 4, 0, 0)]
    assert meter.stats()["unflushed_broadcasts"] == 0
    assert meter.refuse_broadcasts(ACME_1, 1) is None and meter.refuse_broadcasts(ACME_1, 2) is not None


def test_a_failed_read_after_a_write_does_not_write_it_again(store: MemoryBillingStore, clock: Clock) -> None:
    meter = meter_for(store, clock)
    real = store.month_totals
    fail = {"reads": 1}

    def totals(month: str) -> dict[str, int]:
        if fail["reads"]:
            fail["reads"] -= 1
            raise ConnectionError("server closed the connection unexpectedly")
        return real(month)

    store.month_totals = totals  # type: ignore[method-assign]
    recorded: list[str] = []
    real_record = store.record
    store.record = lambda batch: recorded.append(batch.id) or real_record(batch)  # type: ignore[method-assign]
    publish(meter, ACME_1, 3)
    meter.flush_now()
    assert meter.stats()["failed_flushes"] == 1 and meter.stats()["unflushed_broadcasts"] == 0
    assert meter.refuse_broadcasts(ACME_1, 2) is None and meter.refuse_broadcasts(ACME_1, 3) is not None
    meter.flush_now()
    assert len(recorded) == 2 and len(set(recorded)) == 2  # the second flush sent only what was new
    assert store.month_totals("2025-06") == {"acme": 3}
    assert meter.refuse_broadcasts(ACME_1, 2) is None and meter.refuse_broadcasts(ACME_1, 3) is not None


def test_month_rollover_at_the_utc_boundary(store: MemoryBillingStore, clock: Clock) -> None:
    clock.set(utc(2025, 6, 30, 23, 59, 59))
    meter = meter_for(store, clock)
    key = meter.connection_opened(ACME_1)
    meter.connection_opened(ACME_2)
    publish(meter, ACME_1, 5)
    assert meter.refuse_broadcasts(ACME_1, 1) is not None
    clock.now += 0.999  # 23:59:59.999 is still June
    assert meter.refuse_broadcasts(ACME_1, 1) is not None
    assert meter.month == "2025-06"
    clock.set(utc(2025, 7, 1, 0, 0, 0))
    assert meter.refuse_broadcasts(ACME_1, 5) is None  # a new month, a new quota
    publish(meter, ACME_1, 1)
    meter.connection_closed(key)
    meter.flush_now()
    assert store.month_totals("2025-06") == {"acme": 5}
    assert store.month_totals("2025-07") == {"acme": 1}
    # both connections were open when July began: July's peak starts at 2
    (june,) = store.account_months("2025-06")
    (july,) = store.account_months("2025-07")
    assert (june.peak_connections, july.peak_connections) == (2, 2)
    assert july.plan is not None and july.plan.name == "tiny"
    assert meter.month == "2025-07"


def test_connection_limit_is_summed_over_the_accounts_apps(store: MemoryBillingStore, clock: Clock) -> None:
    meter = meter_for(store, clock)
    keys = [meter.connection_opened(ACME_1), meter.connection_opened(ACME_1)]
    assert meter.connection_refusal(ACME_2) is None
    keys.append(meter.connection_opened(ACME_2))
    reason = meter.connection_refusal(ACME_2)
    assert reason is not None and "over connection quota" in reason and len(reason.encode()) <= 123
    assert meter.connection_refusal(ACME_1) is not None
    assert meter.connection_refusal(DEFAULT_APP) is None
    meter.connection_closed(keys.pop())
    assert meter.connection_refusal(ACME_1) is None
    meter.flush_now()
    (month,) = store.account_months("2025-06", "acme")
    assert month.peak_connections == 3
    assert [(r.app_id, r.peak_connections) for r in store.app_usage("2025-06", "acme")] == [("a1", 2), ("a2", 1)]
    assert meter.stats()["refused_connections"] == 2 and meter.stats()["open_connections"] == 2


def test_plan_changes_reach_the_meter(store: MemoryBillingStore, clock: Clock) -> None:
    meter = meter_for(store, clock)
    publish(meter, ACME_1, 5)
    assert meter.refuse_broadcasts(ACME_1, 1) is not None
    store.update_account(Account(id="acme", plan="paid"))
    meter.flush_now()  # refresh_interval 0: plans and accounts are re-read with every write
    assert meter.refuse_broadcasts(ACME_1, 1) is None
    assert meter.plan_of("acme") is not None


def test_warnings_once_per_level_and_month(store: MemoryBillingStore, clock: Clock,
                                           caplog: pytest.LogCaptureFixture) -> None:
    store.update_account(Account(id="acme", plan="ten"))
    meter = meter_for(store, clock)
    caplog.set_level(logging.WARNING, "vask.billing")
    publish(meter, ACME_1, 7)
    meter.flush_now()
    assert meter.warnings_total == 0
    publish(meter, ACME_1, 1)
    meter.flush_now()
    publish(meter, ACME_1, 1)
    meter.flush_now()
    assert meter.warnings("acme") == {"broadcasts": 80}
    publish(meter, ACME_1, 1)
    meter.flush_now()
    assert meter.warnings("acme") == {"broadcasts": 100}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2 and "80%" in messages[0] and "100%" in messages[1] and "acme" in messages[0]
    for _ in range(4):
        meter.connection_opened(ACME_2)
    meter.flush_now()
    assert meter.warnings("acme") == {"broadcasts": 100, "connections": 80}
    assert meter.warnings_total == 3
    # a restarted process does not repeat what was already logged this month
    caplog.clear()
    again = meter_for(store, clock)
    assert again.warnings("acme") == {"broadcasts": 100, "connections": 80}
    assert caplog.records == [] and again.warnings_total == 0
    # a new month starts without warnings
    clock.set(utc(2025, 7, 1))
    publish(again, ACME_1, 1)
    again.flush_now()
    assert again.warnings("acme") == {}


def test_observers_ask_every_gate(store: MemoryBillingStore, clock: Clock) -> None:
    class Broken(Observers):
        def refuse_broadcasts(self, app: App, count: int) -> str | None:
            raise RuntimeError("bug")

    meter = meter_for(store, clock)
    gate = Observers(Broken(), meter)
    publish(meter, ACME_1, 5)
    assert gate.refuse_broadcasts(ACME_1, 1) is not None  # the failing gate is skipped, not fatal
    assert Observers().refuse_broadcasts(ACME_1, 1) is None


def test_start_flushes_periodically_and_stop_writes_the_rest(store: MemoryBillingStore) -> None:
    async def scenario() -> None:
        meter = Meter(store, flush_interval=0.05)
        await meter.start()
        publish(meter, ACME_1, 2)
        for _ in range(100):
            if store.month_totals(meter.month):
                break
            await asyncio.sleep(0.01)
        assert store.month_totals(meter.month) == {"acme": 2}
        meter.flush_interval = 3600  # no periodic flush from here on: only stop() can write
        await asyncio.sleep(0.1)
        publish(meter, ACME_2, 3)
        await meter.stop()
        assert store.month_totals(meter.month) == {"acme": 5}

    asyncio.run(scenario())
