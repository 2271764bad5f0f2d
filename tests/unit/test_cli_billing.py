"""`vask accounts|plans|usage|bill|calc` and `apps --account` through click's CliRunner on a real SQLite store."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from vask.billing.base import AccountMonth, AppUsage, UsageBatch
from vask.billing.plans import month_of
from vask.billing.sqlite import SqliteBillingStore
from vask.cli import cli


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("VASK_"):
            monkeypatch.delenv(name)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def vask(data_dir: Path) -> Any:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--data-dir", str(data_dir), *args])

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def record(data_dir: Path, *rows: AppUsage, months: tuple[AccountMonth, ...] = ()) -> None:
    store = SqliteBillingStore(data_dir / "vask.db")
    try:
        store.record(UsageBatch(list(rows), list(months)))
    finally:
        store.close()


def test_accounts_lifecycle(vask: Any) -> None:
    created = json.loads(ok(vask("accounts", "create", "--id", "acme", "--name", "Acme", "--json")))
    assert created["plan"] == "free" and created["plan_details"]["included_broadcasts"] == 500_000
    listed = json.loads(ok(vask("accounts", "list", "--json")))
    assert [(a["id"], a["plan"]) for a in listed] == [("default", "unlimited"), ("acme", "free")]
    assert "acme" in ok(vask("accounts", "list"))
    assert "Account acme is on plan pro." in ok(vask("accounts", "set-plan", "acme", "pro"))
    shown = json.loads(ok(vask("accounts", "show", "acme", "--json")))
    assert shown["plan"] == "pro" and shown["apps"] == []
    result = vask("accounts", "create", "--id", "acme")
    assert result.exit_code == 1 and "already exists" in result.output
    result = vask("accounts", "set-plan", "acme", "gold")
    assert result.exit_code == 1 and "no plan named 'gold'" in result.output
    result = vask("accounts", "show", "nobody")
    assert result.exit_code == 1 and "no account with id 'nobody'" in result.output
    result = vask("accounts", "create", "--id", "bad id")
    assert result.exit_code == 2


def test_apps_belong_to_accounts(vask: Any) -> None:
    ok(vask("accounts", "create", "--id", "acme"))
    app = json.loads(ok(vask("apps", "create", "--id", "a1", "--account", "acme", "--json")))
    assert app["account"] == "acme"
    assert json.loads(ok(vask("apps", "create", "--id", "a2", "--json")))["account"] == "default"
    result = vask("apps", "create", "--id", "a3", "--account", "nobody")
    assert result.exit_code == 1 and "no account with id 'nobody'" in result.output
    assert json.loads(ok(vask("accounts", "show", "acme", "--json")))["apps"] == ["a1"]
    assert json.loads(ok(vask("apps", "update", "a2", "--account", "acme", "--json")))["account"] == "acme"
    assert json.loads(ok(vask("accounts", "show", "acme", "--json")))["apps"] == ["a1", "a2"]
    assert json.loads(ok(vask("apps", "update", "a1", "--account", "default", "--json")))["account"] == "default"
    assert "account: default" in ok(vask("apps", "show", "a1"))


def test_plans_set_and_list(vask: Any) -> None:
    assert "Plan tiny created" in ok(vask("plans", "set", "tiny", "--create", "--broadcasts", "5",
                                          "--connections", "3"))
    ok(vask("plans", "set", "pro", "--overage-per-million", "1.50"))
    ok(vask("plans", "set", "team", "--create", "--fee", "49", "--broadcasts", "50_000_000",
            "--overage-per-million", "0.75", "--description", "Teams"))
    plans = {p["name"]: p for p in json.loads(ok(vask("plans", "list", "--json")))}
    assert plans["tiny"]["included_broadcasts"] == 5 and plans["tiny"]["overage_cents_per_million"] is None
    assert plans["pro"]["overage_cents_per_million"] == 150 and plans["pro"]["monthly_fee_cents"] == 1_000
    assert plans["team"]["monthly_fee_cents"] == 4_900 and plans["team"]["max_connections"] is None
    ok(vask("plans", "set", "tiny", "--broadcasts", "unlimited"))
    assert json.loads(ok(vask("plans", "list", "--json")))[-2]["included_broadcasts"] is None
    assert "hard quota" in ok(vask("plans", "list"))
    for bad in (("--fee", "1.001"), ("--fee", "-1"), ("--broadcasts", "lots"), ("--overage-per-million", "x")):
        assert vask("plans", "set", "tiny", *bad).exit_code == 2


def test_plans_set_of_an_unknown_plan_needs_create(vask: Any) -> None:
    ok(vask("plans", "set", "pro", "--fee", "10"))  # an existing plan: the store is created
    result = vask("plans", "set", "prro", "--fee", "10")
    assert result.exit_code == 1 and "no plan named 'prro'" in result.output and "--create" in result.output
    assert "prro" not in {p["name"] for p in json.loads(ok(vask("plans", "list", "--json")))}


def test_one_is_singular(vask: Any) -> None:
    result = ok(vask("plans", "set", "solo", "--create", "--broadcasts", "1", "--connections", "1"))
    assert "1 broadcast, 1 connection," in result
    ok(vask("accounts", "create", "--id", "one", "--plan", "solo"))
    assert "1 concurrent connection\n" in ok(vask("accounts", "show", "one"))


def test_usage_and_bill(vask: Any, data_dir: Path) -> None:
    ok(vask("plans", "set", "pro", "--overage-per-million", "1.50"))
    ok(vask("accounts", "create", "--id", "acme", "--plan", "pro", "--name", "Acme"))
    record(data_dir, AppUsage("acme", "a1", "2025-06", 12_000_000, 48_000_000, 900),
           AppUsage("acme", "a2", "2025-06", 500_000, 0, 10), AppUsage("default", "d1", "2025-06", 7, 0, 1),
           months=(AccountMonth("acme", "2025-06", 905),))
    report = json.loads(ok(vask("usage", "--month", "2025-06", "--json")))
    assert [a["account"] for a in report["accounts"]] == ["acme", "default"]
    acme = report["accounts"][0]
    assert (acme["broadcasts"], acme["deliveries"], acme["peak_connections"]) == (12_500_000, 48_000_000, 905)
    assert acme["warnings"] == {"broadcasts": 100, "connections": None}
    assert [a["app"] for a in acme["apps"]] == ["a1", "a2"]
    only = json.loads(ok(vask("usage", "--month", "2025-06", "--account", "acme", "--app", "a2", "--json")))
    assert [(a["account"], [x["app"] for x in a["apps"]]) for a in only["accounts"]] == [("acme", ["a2"])]
    fanout = json.loads(ok(vask("usage", "--month", "2025-06", "--account", "acme", "--fanout", "--json")))
    assert fanout["accounts"][0]["fanout"]["per_message_messages"] == 60_500_000
    text = ok(vask("usage", "--month", "2025-06", "--fanout"))
    assert "60,500,000" in text and "warning: account acme reached 100% of its broadcasts quota" in text
    # the current month with no usage yet
    assert "No usage recorded." in ok(vask("usage"))
    assert json.loads(ok(vask("usage", "--json")))["month"] == month_of(time.time())

    statement = json.loads(ok(vask("bill", "--account", "acme", "--month", "2025-06", "--json")))
    assert statement["overage_broadcasts"] == 2_500_000 and statement["overage_cents"] == 375
    assert statement["total"] == "$13.75" and statement["peak_connections"] == 905
    text = ok(vask("bill", "--account", "acme", "--month", "2025-06"))
    assert "Total" in text and "$13.75" in text and "905" in text
    assert vask("bill", "--account", "nobody").exit_code == 1
    assert vask("bill", "--account", "acme", "--month", "2025-6").exit_code == 2


def test_calc(vask: Any, data_dir: Path) -> None:
    text = ok(vask("calc", "--broadcasts", "1000000", "--subscribers", "50"))
    assert "51,000,000 messages" in text and "51.00x" in text
    assert not (data_dir / "vask.db").exists()  # a calculation creates no database
    data = json.loads(ok(vask("calc", "--broadcasts", "20000000", "--subscribers", "3", "--json")))
    assert data["per_message_messages"] == 80_000_000 and data["ratio"] == 4.0
    assert {row["plan"]: row["price"] for row in data["plans"]} == {"free": None, "unlimited": "$0.00",
                                                                   "pro": "$20.00"}
    assert vask("calc", "--broadcasts", "-1", "--subscribers", "3").exit_code == 2
