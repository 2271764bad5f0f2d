"""Row conversions shared by the SQL billing stores (SQLite and PostgreSQL use the same columns)."""

from __future__ import annotations

import json
from typing import Any

from vask.billing.base import AccountMonth, AppUsage
from vask.billing.plans import Account, Plan

PLAN_COLUMNS = "name, monthly_fee_cents, included_broadcasts, max_connections, overage_cents_per_million, description"
ACCOUNT_COLUMNS = "id, name, plan"
APP_USAGE_COLUMNS = "account_id, app_id, month, broadcasts, deliveries, peak_connections"
ACCOUNT_MONTH_COLUMNS = "account_id, month, peak_connections, plan"


def plan_values(plan: Plan) -> tuple[Any, ...]:
    return (plan.name, plan.monthly_fee_cents, plan.included_broadcasts, plan.max_connections,
            plan.overage_cents_per_million, plan.description)


def plan_from_row(row: tuple[Any, ...]) -> Plan:
    name, fee, included, connections, overage, description = row
    return Plan(name=name, monthly_fee_cents=fee, included_broadcasts=included, max_connections=connections,
                overage_cents_per_million=overage, description=description)


def account_from_row(row: tuple[Any, ...]) -> Account:
    return Account(id=row[0], name=row[1], plan=row[2])


def app_usage_from_row(row: tuple[Any, ...]) -> AppUsage:
    return AppUsage(str(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]), int(row[5]))


def plan_json(plan: Plan | None) -> str | None:
    return None if plan is None else json.dumps(plan.model_dump(mode="json"), sort_keys=True)


def account_month_from_row(row: tuple[Any, ...]) -> AccountMonth:
    raw = row[3]
    if isinstance(raw, str):
        raw = json.loads(raw)
    plan = Plan.model_validate(raw) if raw is not None else None
    return AccountMonth(str(row[0]), str(row[1]), int(row[2]), plan)
