"""The BillingStore interface: plans, accounts and the usage ledger, kept in the app store's database.

The ledger holds one row per (account, app, month) with broadcasts, delivered copies and the app's peak
concurrent connections, and one row per (account, month) with the account's peak and the plan it was on.
Writes are *additive* (``record`` adds counts and keeps the larger peak), so several processes or nodes can
flush their own deltas into one database without coordination. Each batch carries an id the store keeps for
``BATCH_ID_DAYS``: a batch written again (its first COMMIT went through but the answer was lost, so the meter
could not know) is not added twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from vask.apps.base import AppStoreError
from vask.billing.plans import Account, Plan


@dataclass(slots=True)
class AppUsage:
    """Usage of one app under one account in one month (a ledger row, or a delta to add to one)."""

    account_id: str
    app_id: str
    month: str
    broadcasts: int = 0
    deliveries: int = 0
    peak_connections: int = 0


@dataclass(slots=True)
class AccountMonth:
    """An account's month: its peak concurrent connections (all apps together) and the plan it was on.

    ``plan`` is a snapshot written with the usage, so a statement for a past month keeps the terms of that
    month even after the operator edits the plan or moves the account; the latest snapshot wins.
    """

    account_id: str
    month: str
    peak_connections: int = 0
    plan: Plan | None = None


BATCH_ID_DAYS = 7  # how long a store remembers a batch id: far beyond any retry of one


def _batch_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class UsageBatch:
    apps: list[AppUsage]
    accounts: list[AccountMonth]
    id: str = field(default_factory=_batch_id)  # the same id when the meter writes the batch again

    def __bool__(self) -> bool:
        return bool(self.apps or self.accounts)


class BillingStoreError(AppStoreError):
    """The billing tables cannot be opened or reached (an AppStoreError: they live in the same database)."""


class BillingStore(Protocol):
    """Durable plans, accounts and usage. Blocking calls: the server runs them in a worker thread.

    Guarantees: the default plans and the default account exist after opening (created if missing, never
    overwritten); ``record`` is atomic (all of a batch or none of it), additive, and idempotent per batch id
    (a batch recorded again is a no-op); reads of usage return what was recorded by every process sharing the
    database.
    """

    # plans
    def list_plans(self) -> list[Plan]: ...

    def get_plan(self, name: str) -> Plan | None: ...

    def put_plan(self, plan: Plan) -> Plan:
        """Create or replace a plan."""

    # accounts
    def list_accounts(self) -> list[Account]: ...

    def get_account(self, account_id: str) -> Account | None: ...

    def create_account(self, account: Account) -> Account:
        """Raises AccountExists, or PlanNotFound when the plan does not exist."""

    def update_account(self, account: Account) -> Account:
        """Replace name and plan. Raises AccountNotFound or PlanNotFound."""

    # usage
    def record(self, batch: UsageBatch) -> bool:
        """Add the batch; False when a batch with its id was already recorded (nothing is added then)."""

    def month_totals(self, month: str) -> dict[str, int]:
        """Broadcasts per account in ``month``, every app and every process together."""

    def app_usage(self, month: str, account_id: str | None = None,
                  app_id: str | None = None) -> list[AppUsage]:
        """Ledger rows of ``month``, optionally for one account and/or one app, ordered by account and app."""

    def account_months(self, month: str, account_id: str | None = None) -> list[AccountMonth]: ...

    def close(self) -> None: ...
