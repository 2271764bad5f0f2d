"""An in-process BillingStore, for the memory:// store and for tests; nothing survives the process."""

from __future__ import annotations

import threading
import time

from vask.billing.base import BATCH_ID_DAYS, AccountMonth, AppUsage, UsageBatch
from vask.billing.plans import (
    DEFAULT_ACCOUNT,
    DEFAULT_PLANS,
    Account,
    AccountExists,
    AccountNotFound,
    Plan,
    PlanNotFound,
)


class MemoryBillingStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plans: dict[str, Plan] = {plan.name: plan.model_copy() for plan in DEFAULT_PLANS}
        self._accounts: dict[str, Account] = {DEFAULT_ACCOUNT.id: DEFAULT_ACCOUNT.model_copy()}
        self._apps: dict[tuple[str, str, str], AppUsage] = {}
        self._months: dict[tuple[str, str], AccountMonth] = {}
        self._batches: dict[str, float] = {}  # batch id → when recorded, oldest first

    def list_plans(self) -> list[Plan]:
        with self._lock:
            return sorted((p.model_copy() for p in self._plans.values()), key=lambda p: p.name)

    def get_plan(self, name: str) -> Plan | None:
        with self._lock:
            plan = self._plans.get(name)
            return plan.model_copy() if plan else None

    def put_plan(self, plan: Plan) -> Plan:
        with self._lock:
            self._plans[plan.name] = plan.model_copy()
        return plan

    def list_accounts(self) -> list[Account]:
        with self._lock:
            return [a.model_copy() for a in self._accounts.values()]

    def get_account(self, account_id: str) -> Account | None:
        with self._lock:
            account = self._accounts.get(account_id)
            return account.model_copy() if account else None

    def create_account(self, account: Account) -> Account:
        with self._lock:
            if account.id in self._accounts:
                raise AccountExists(f"an account with id {account.id!r} already exists")
            self._check_plan(account.plan)
            self._accounts[account.id] = account.model_copy()
        return account

    def update_account(self, account: Account) -> Account:
        with self._lock:
            if account.id not in self._accounts:
                raise AccountNotFound(f"no account with id {account.id!r}")
            self._check_plan(account.plan)
            self._accounts[account.id] = account.model_copy()
        return account

    def _check_plan(self, name: str) -> None:
        if name not in self._plans:
            raise PlanNotFound(f"no plan named {name!r}")

    def record(self, batch: UsageBatch) -> bool:
        if not batch:
            return True
        now = time.monotonic()
        with self._lock:
            if batch.id in self._batches:
                return False
            self._batches[batch.id] = now
            # Oldest first; the id just added is never that old, so the loop ends.
            while self._batches[oldest := next(iter(self._batches))] < now - BATCH_ID_DAYS * 86400:
                del self._batches[oldest]
            for delta in batch.apps:
                key = (delta.account_id, delta.app_id, delta.month)
                row = self._apps.setdefault(key, AppUsage(*key))
                row.broadcasts += delta.broadcasts
                row.deliveries += delta.deliveries
                row.peak_connections = max(row.peak_connections, delta.peak_connections)
            for month in batch.accounts:
                stored = self._months.setdefault((month.account_id, month.month),
                                                 AccountMonth(month.account_id, month.month))
                stored.peak_connections = max(stored.peak_connections, month.peak_connections)
                if month.plan is not None:
                    stored.plan = month.plan.model_copy()
        return True

    def month_totals(self, month: str) -> dict[str, int]:
        totals: dict[str, int] = {}
        with self._lock:
            for row in self._apps.values():
                if row.month == month:
                    totals[row.account_id] = totals.get(row.account_id, 0) + row.broadcasts
        return totals

    def app_usage(self, month: str, account_id: str | None = None,
                  app_id: str | None = None) -> list[AppUsage]:
        with self._lock:
            rows = [AppUsage(r.account_id, r.app_id, r.month, r.broadcasts, r.deliveries, r.peak_connections)
                    for r in self._apps.values() if r.month == month
                    and account_id in (None, r.account_id) and app_id in (None, r.app_id)]
        return sorted(rows, key=lambda r: (r.account_id, r.app_id))

    def account_months(self, month: str, account_id: str | None = None) -> list[AccountMonth]:
        with self._lock:
            rows = [AccountMonth(m.account_id, m.month, m.peak_connections, m.plan)
                    for m in self._months.values() if m.month == month and account_id in (None, m.account_id)]
        return sorted(rows, key=lambda m: m.account_id)

    def close(self) -> None:
        """Nothing to release."""
