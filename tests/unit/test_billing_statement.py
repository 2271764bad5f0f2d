"""Statement arithmetic (fees, overage rounding), usage reports and the fan-out comparison."""

from __future__ import annotations

import pytest

from vask.billing import calc
from vask.billing.base import AccountMonth, AppUsage, UsageBatch
from vask.billing.memory import MemoryBillingStore
from vask.billing.plans import (
    DEFAULT_PLANS,
    Account,
    AccountNotFound,
    Plan,
    month_of,
    month_start,
    next_month,
    parse_month,
    warning_level,
)
from vask.billing.statement import account_usage, build_statement, money, overage_cents, plan_cost

PLANS = {plan.name: plan for plan in DEFAULT_PLANS}
PRO = PLANS["pro"].model_copy(update={"overage_cents_per_million": 150})  # $1.50 per extra million
ACME = Account(id="acme", name="Acme", plan="pro")


@pytest.mark.parametrize(("extra", "price", "cents"), [
    (0, 150, 0),
    (-5, 150, 0),
    (1, 150, 1),  # any overage costs at least a cent: rounded up, never down to $0
    (1_000_000, 150, 150),
    (1_000_001, 150, 151),
    (2_500_000, 150, 375),
    (3_333_333, 100, 334),  # 333.3333 cents → 334
    (10_000_000, 0, 0),  # an operator may price overage at zero
])
def test_overage_is_rounded_up_to_the_cent(extra: int, price: int, cents: int) -> None:
    assert overage_cents(extra, price) == cents


def test_pro_statement_with_overage() -> None:
    statement = build_statement(ACME, "2025-06", PRO, broadcasts=12_500_000, deliveries=40_000_000,
                                peak_connections=8_123)
    assert statement.fee_cents == 1_000
    assert statement.included_broadcasts == 10_000_000
    assert statement.overage_broadcasts == 2_500_000
    assert statement.overage_cents == 375
    assert statement.total_cents == 1_375
    assert statement.peak_connections == 8_123 and statement.connection_limit == 10_000
    text = statement.render()
    for fragment in ("Statement for account acme (Acme), 2025-06", "$10.00", "10,000,000", "12,500,000",
                     "2,500,000", "$1.50 per million", "$3.75", "8,123", "$13.75"):
        assert fragment in text
    data = statement.to_dict()
    assert data["total_cents"] == 1_375 and data["total"] == "$13.75" and data["plan"] == "pro"


def test_within_the_included_broadcasts_only_the_fee() -> None:
    statement = build_statement(ACME, "2025-06", PRO, 10_000_000, 0, 0)
    assert (statement.overage_broadcasts, statement.overage_cents, statement.total_cents) == (0, 0, 1_000)


def test_free_plan_never_bills_overage() -> None:
    # Above a hard quota only a cluster's bounded overshoot can happen: it is shown, not billed.
    statement = build_statement(ACME, "2025-06", PLANS["free"], 500_003, 0, 100)
    assert statement.overage_broadcasts == 3
    assert (statement.overage_cents, statement.total_cents) == (0, 0)
    assert "hard quota" in statement.render()


def test_plan_cost_and_money() -> None:
    assert plan_cost(PLANS["free"], 500_000) == 0
    assert plan_cost(PLANS["free"], 500_001) is None
    assert plan_cost(PRO, 11_000_000) == 1_150
    assert plan_cost(PLANS["unlimited"], 10**12) == 0
    assert money(0) == "$0.00" and money(5) == "$0.05" and money(123_456_78) == "$123,456.78"


def test_fanout_comparison() -> None:
    comparison = calc.compare(1_000_000, 50)
    assert (comparison.broadcasts, comparison.deliveries, comparison.messages) == (1_000_000, 50_000_000,
                                                                                   51_000_000)
    assert comparison.ratio == 51 and comparison.fanout == 50
    assert calc.compare(0, 10).ratio == 0
    with pytest.raises(ValueError):
        calc.compare(-1, 3)
    real = calc.from_usage(10, 35)
    assert real.to_dict() == {"broadcasts": 10, "deliveries": 35, "per_message_messages": 45, "fanout": 3.5,
                              "ratio": 4.5}
    prices = {row["plan"]: row["cents"] for row in calc.plan_prices(PLANS.values(), 12_000_000)}
    assert prices == {"free": None, "unlimited": 0, "pro": 1_200}
    assert "51,000,000 messages" in calc.render(comparison, calc.plan_prices(PLANS.values(), 1_000_000))


def test_months() -> None:
    assert month_of(month_start("2025-12")) == "2025-12"
    assert month_of(month_start("2026-01") - 0.001) == "2025-12"
    assert next_month("2025-12") == "2026-01" and next_month("2025-06") == "2025-07"
    for bad in ("2025-13", "2025-6", "June", "1969-01", ""):
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_month(bad)


def test_warning_levels() -> None:
    assert warning_level(79, 100) is None
    assert warning_level(80, 100) == 80
    assert warning_level(100, 100) == 100 and warning_level(150, 100) == 100
    assert warning_level(5, None) is None
    assert warning_level(0, 0) is None and warning_level(1, 0) == 100


def test_account_usage_report() -> None:
    store = MemoryBillingStore()
    store.put_plan(PRO)
    store.put_plan(Plan(name="tiny", included_broadcasts=10, max_connections=5))
    store.create_account(ACME)
    store.create_account(Account(id="quiet", plan="free"))
    store.record(UsageBatch([AppUsage("acme", "a1", "2025-05", 8, 80, 4), AppUsage("acme", "a2", "2025-05", 1, 2, 1)],
                            [AccountMonth("acme", "2025-05", 5, Plan(name="tiny", included_broadcasts=10,
                                                                       max_connections=5))]))
    # May is over: it is billed on the plan the account ended May on, even though it is on pro now
    (may,) = account_usage(store, "2025-05", "2025-06", account_id="acme")
    assert may.plan is not None and may.plan.name == "tiny"
    assert (may.broadcasts, may.deliveries, may.peak_connections) == (9, 82, 5)
    assert may.warnings() == {"broadcasts": 80, "connections": 100}
    data = may.to_dict(fanout=True)
    assert data["fanout"]["per_message_messages"] == 91 and data["apps"][0]["fanout"]["ratio"] == 11.0
    # the current month uses the account's plan now
    (june,) = account_usage(store, "2025-06", "2025-06", account_id="acme")
    assert june.plan == PRO and june.broadcasts == 0
    statement = june.statement()
    assert statement is not None and statement.total_cents == 1_000
    # filters
    assert [u.account.id for u in account_usage(store, "2025-05", "2025-06")] == ["acme"]
    assert account_usage(store, "2025-05", "2025-06", app_id="zzz") == []
    assert [r.app_id for r in account_usage(store, "2025-05", "2025-06", app_id="a2")[0].apps] == ["a2"]
    with pytest.raises(AccountNotFound):
        account_usage(store, "2025-05", "2025-06", account_id="nobody")
