"""The behaviour every BillingStore promises (see vask.billing.base.BillingStore), run against each one.

A test module subclasses ``BillingStoreContract`` and provides a ``billing`` fixture (a freshly opened
store); stores that keep data outside the process subclass ``PersistentBillingStoreContract`` and also
provide ``reopen_billing`` (a callable opening a second, independent store on the same data).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from vask.billing.base import AccountMonth, AppUsage, BillingStore, UsageBatch
from vask.billing.plans import (
    DEFAULT_ACCOUNT_ID,
    Account,
    AccountExists,
    AccountNotFound,
    Plan,
    PlanNotFound,
)

TINY = Plan(name="tiny", included_broadcasts=5, max_connections=3, description="tests")


def batch(*apps: AppUsage, accounts: tuple[AccountMonth, ...] = ()) -> UsageBatch:
    return UsageBatch(list(apps), list(accounts))


class BillingStoreContract:
    def test_default_plans_and_account(self, billing: BillingStore) -> None:
        plans = {p.name: p for p in billing.list_plans()}
        assert set(plans) == {"free", "pro", "unlimited"}
        free, pro = plans["free"], plans["pro"]
        assert (free.monthly_fee_cents, free.included_broadcasts, free.max_connections) == (0, 500_000, 100)
        assert free.hard_quota == 500_000
        assert (pro.monthly_fee_cents, pro.included_broadcasts, pro.max_connections) == (1_000, 10_000_000, 10_000)
        assert pro.overage_cents_per_million is not None and pro.hard_quota is None
        assert plans["unlimited"].hard_quota is None and plans["unlimited"].max_connections is None
        default = billing.get_account(DEFAULT_ACCOUNT_ID)
        assert default is not None and default.plan == "unlimited"

    def test_plans_are_created_and_replaced(self, billing: BillingStore) -> None:
        assert billing.get_plan("tiny") is None
        billing.put_plan(TINY)
        assert billing.get_plan("tiny") == TINY
        cheaper = TINY.model_copy(update={"included_broadcasts": None, "overage_cents_per_million": 5})
        billing.put_plan(cheaper)
        assert billing.get_plan("tiny") == cheaper
        assert [p.name for p in billing.list_plans()] == ["free", "pro", "tiny", "unlimited"]

    def test_accounts(self, billing: BillingStore) -> None:
        billing.create_account(Account(id="acme", name="Acme", plan="free"))
        assert billing.get_account("acme") == Account(id="acme", name="Acme", plan="free")
        with pytest.raises(AccountExists):
            billing.create_account(Account(id="acme", plan="pro"))
        with pytest.raises(PlanNotFound):
            billing.create_account(Account(id="globex", plan="nope"))
        assert billing.get_account("globex") is None
        billing.update_account(Account(id="acme", name="Acme Inc", plan="pro"))
        assert billing.get_account("acme") == Account(id="acme", name="Acme Inc", plan="pro")
        with pytest.raises(PlanNotFound):
            billing.update_account(Account(id="acme", plan="nope"))
        with pytest.raises(AccountNotFound):
            billing.update_account(Account(id="nobody", plan="free"))
        assert [a.id for a in billing.list_accounts()] == [DEFAULT_ACCOUNT_ID, "acme"]

    def test_record_adds_counts_and_keeps_the_highest_peak(self, billing: BillingStore) -> None:
        billing.record(batch(AppUsage("acme", "a1", "2025-06", 3, 30, 4), AppUsage("acme", "a2", "2025-06", 1, 0, 1),
                             accounts=(AccountMonth("acme", "2025-06", 5, TINY),)))
        billing.record(batch(AppUsage("acme", "a1", "2025-06", 2, 5, 2),
                             accounts=(AccountMonth("acme", "2025-06", 3, None),)))
        assert billing.app_usage("2025-06") == [AppUsage("acme", "a1", "2025-06", 5, 35, 4),
                                                AppUsage("acme", "a2", "2025-06", 1, 0, 1)]
        # the peak stays the highest; a batch without a plan snapshot keeps the last one
        assert billing.account_months("2025-06") == [AccountMonth("acme", "2025-06", 5, TINY)]
        billing.record(batch(accounts=(AccountMonth("acme", "2025-06", 9, TINY.model_copy(update={"name": "t2"})),)))
        (month,) = billing.account_months("2025-06", "acme")
        assert month.peak_connections == 9 and month.plan is not None and month.plan.name == "t2"

    def test_a_batch_recorded_again_is_not_added_twice(self, billing: BillingStore) -> None:
        # The meter writes a batch again when it could not tell whether the first COMMIT went through.
        first = batch(AppUsage("acme", "a1", "2025-06", 3, 30, 4), accounts=(AccountMonth("acme", "2025-06", 4),))
        assert billing.record(first) is True
        assert billing.record(first) is False
        same_counts = batch(AppUsage("acme", "a1", "2025-06", 3, 30, 4))
        assert same_counts.id != first.id and billing.record(same_counts) is True
        assert billing.app_usage("2025-06") == [AppUsage("acme", "a1", "2025-06", 6, 60, 4)]

    def test_empty_batch_is_a_no_op(self, billing: BillingStore) -> None:
        billing.record(batch())
        assert billing.app_usage("2025-06") == []

    def test_months_and_filters(self, billing: BillingStore) -> None:
        billing.record(batch(AppUsage("acme", "a1", "2025-05", 7), AppUsage("acme", "a1", "2025-06", 1),
                             AppUsage("acme", "a2", "2025-06", 2), AppUsage("globex", "g1", "2025-06", 4),
                             AppUsage("globex", "a1", "2025-06", 8)))  # an app moved between accounts
        assert billing.month_totals("2025-06") == {"acme": 3, "globex": 12}
        assert billing.month_totals("2025-05") == {"acme": 7}
        assert billing.month_totals("2025-07") == {}
        assert [(r.account_id, r.app_id) for r in billing.app_usage("2025-06", "globex")] == [
            ("globex", "a1"), ("globex", "g1")]
        assert [(r.account_id, r.broadcasts) for r in billing.app_usage("2025-06", app_id="a1")] == [
            ("acme", 1), ("globex", 8)]
        assert billing.app_usage("2025-06", "acme", "a2") == [AppUsage("acme", "a2", "2025-06", 2)]
        billing.record(batch(accounts=(AccountMonth("acme", "2025-06", 1), AccountMonth("globex", "2025-06", 2))))
        assert [m.account_id for m in billing.account_months("2025-06")] == ["acme", "globex"]
        assert billing.account_months("2025-06", "globex") == [AccountMonth("globex", "2025-06", 2)]
        assert billing.account_months("2025-05") == []

    def test_concurrent_records_are_all_counted(self, billing: BillingStore) -> None:
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(20):
                    billing.record(batch(AppUsage("acme", "a1", "2025-06", 1, 2, 0)))
            except BaseException as exc:  # collected: a failure in a thread must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert billing.app_usage("2025-06") == [AppUsage("acme", "a1", "2025-06", 120, 240, 0)]


class PersistentBillingStoreContract(BillingStoreContract):
    def test_persists_and_keeps_edited_defaults(self, billing: BillingStore,
                                                reopen_billing: Callable[[], BillingStore]) -> None:
        edited = Plan(name="pro", monthly_fee_cents=1_000, included_broadcasts=10_000_000, max_connections=10_000,
                      overage_cents_per_million=250)
        billing.put_plan(edited)
        billing.create_account(Account(id="acme", plan="pro"))
        billing.record(batch(AppUsage("acme", "a1", "2025-06", 4, 8, 2)))
        billing.close()
        other = reopen_billing()
        try:
            assert other.get_plan("pro") == edited  # not reset to the default by the reopening
            assert [a.id for a in other.list_accounts()] == [DEFAULT_ACCOUNT_ID, "acme"]
            assert other.month_totals("2025-06") == {"acme": 4}
        finally:
            other.close()

    def test_two_processes_add_up(self, billing: BillingStore, reopen_billing: Callable[[], BillingStore]) -> None:
        other = reopen_billing()
        try:
            billing.record(batch(AppUsage("acme", "a1", "2025-06", 3, 0, 1)))
            other.record(batch(AppUsage("acme", "a1", "2025-06", 4, 0, 2)))
            assert billing.month_totals("2025-06") == {"acme": 7}
            assert other.app_usage("2025-06") == [AppUsage("acme", "a1", "2025-06", 7, 0, 2)]
        finally:
            other.close()
