"""The billing tables in the SQLite file that holds the apps (WAL mode, shared with the CLI)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from vask.billing._sql import (
    ACCOUNT_COLUMNS,
    ACCOUNT_MONTH_COLUMNS,
    APP_USAGE_COLUMNS,
    PLAN_COLUMNS,
    account_from_row,
    account_month_from_row,
    app_usage_from_row,
    plan_from_row,
    plan_json,
    plan_values,
)
from vask.billing.base import BATCH_ID_DAYS, AccountMonth, AppUsage, BillingStoreError, UsageBatch
from vask.billing.plans import (
    DEFAULT_ACCOUNT,
    DEFAULT_PLANS,
    Account,
    AccountExists,
    AccountNotFound,
    Plan,
    PlanNotFound,
)
from vask.db.sqlite import SqliteDatabase
from vask.db.sqlite import now as _now

# Versioned apart from the app tables (their own schema_version), so the two evolve independently.
# Each entry upgrades the billing schema by one version; append, never edit a released entry.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE plans (
            name TEXT PRIMARY KEY,
            monthly_fee_cents INTEGER NOT NULL DEFAULT 0,
            included_broadcasts INTEGER,
            max_connections INTEGER,
            overage_cents_per_million INTEGER,
            description TEXT NOT NULL DEFAULT '',
            updated_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            plan TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
        """
        CREATE TABLE usage_apps (
            month TEXT NOT NULL,
            account_id TEXT NOT NULL,
            app_id TEXT NOT NULL,
            broadcasts INTEGER NOT NULL DEFAULT 0,
            deliveries INTEGER NOT NULL DEFAULT 0,
            peak_connections INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (month, account_id, app_id)
        )
        """,
        """
        CREATE TABLE usage_accounts (
            month TEXT NOT NULL,
            account_id TEXT NOT NULL,
            peak_connections INTEGER NOT NULL DEFAULT 0,
            plan TEXT,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (month, account_id)
        )
        """,
    ),
    (  # 2: batch ids, so a batch written again after a lost answer is not added twice
        "CREATE TABLE usage_batches (id TEXT PRIMARY KEY, written_at TEXT NOT NULL)",
        "CREATE INDEX usage_batches_written_at ON usage_batches (written_at)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def _days_ago(days: int) -> str:
    """A timestamp in the format of ``now()``, which sorts as text."""
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="microseconds")


_ADD_APP_USAGE = (
    f"INSERT INTO usage_apps ({APP_USAGE_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (month, account_id, app_id) DO UPDATE SET broadcasts = broadcasts + excluded.broadcasts, "
    "deliveries = deliveries + excluded.deliveries, "
    "peak_connections = MAX(peak_connections, excluded.peak_connections), updated_at = excluded.updated_at")
_ADD_ACCOUNT_MONTH = (
    f"INSERT INTO usage_accounts ({ACCOUNT_MONTH_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (month, account_id) DO UPDATE SET "
    "peak_connections = MAX(peak_connections, excluded.peak_connections), "
    "plan = COALESCE(excluded.plan, plan), updated_at = excluded.updated_at")


class SqliteBillingStore(SqliteDatabase):
    """The billing tables, next to the app tables in the same file, on the shared connection plumbing."""

    error = BillingStoreError

    def _setup(self) -> None:
        with self._transaction() as conn:
            self._migrate(conn, "billing_schema_version", MIGRATIONS, "billing schema")
            # The defaults are created when missing and never overwritten: operators may have edited them.
            now = _now()
            conn.executemany(f"INSERT OR IGNORE INTO plans ({PLAN_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(*plan_values(plan), now) for plan in DEFAULT_PLANS])
            conn.execute(f"INSERT OR IGNORE INTO accounts ({ACCOUNT_COLUMNS}, created_at, updated_at) "
                         "VALUES (?, ?, ?, ?, ?)", (DEFAULT_ACCOUNT.id, DEFAULT_ACCOUNT.name, DEFAULT_ACCOUNT.plan,
                                                    now, now))

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._guard():
            return self._conn.execute(query, params).fetchall()

    # -- plans ---------------------------------------------------------------------------------

    def list_plans(self) -> list[Plan]:
        return [plan_from_row(row) for row in self._rows(f"SELECT {PLAN_COLUMNS} FROM plans ORDER BY name")]

    def get_plan(self, name: str) -> Plan | None:
        rows = self._rows(f"SELECT {PLAN_COLUMNS} FROM plans WHERE name = ?", (name,))
        return plan_from_row(rows[0]) if rows else None

    def put_plan(self, plan: Plan) -> Plan:
        with self._transaction() as conn:
            conn.execute(f"INSERT OR REPLACE INTO plans ({PLAN_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (*plan_values(plan), _now()))
        return plan

    # -- accounts ------------------------------------------------------------------------------

    def list_accounts(self) -> list[Account]:
        rows = self._rows(f"SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, id")
        return [account_from_row(row) for row in rows]

    def get_account(self, account_id: str) -> Account | None:
        rows = self._rows(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?", (account_id,))
        return account_from_row(rows[0]) if rows else None

    def create_account(self, account: Account) -> Account:
        now = _now()
        with self._transaction() as conn:
            self._check_plan(conn, account.plan)
            try:
                conn.execute(f"INSERT INTO accounts ({ACCOUNT_COLUMNS}, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                             (account.id, account.name, account.plan, now, now))
            except sqlite3.IntegrityError as exc:
                raise AccountExists(f"an account with id {account.id!r} already exists") from exc
        return account

    def update_account(self, account: Account) -> Account:
        with self._transaction() as conn:
            self._check_plan(conn, account.plan)
            cursor = conn.execute("UPDATE accounts SET name = ?, plan = ?, updated_at = ? WHERE id = ?",
                                  (account.name, account.plan, _now(), account.id))
            if cursor.rowcount == 0:
                raise AccountNotFound(f"no account with id {account.id!r}")
        return account

    @staticmethod
    def _check_plan(conn: sqlite3.Connection, name: str) -> None:
        if conn.execute("SELECT 1 FROM plans WHERE name = ?", (name,)).fetchone() is None:
            raise PlanNotFound(f"no plan named {name!r} (see `vask plans list`)")

    # -- usage ---------------------------------------------------------------------------------

    def record(self, batch: UsageBatch) -> bool:
        if not batch:
            return True
        now = _now()
        with self._transaction() as conn:
            if conn.execute("INSERT OR IGNORE INTO usage_batches (id, written_at) VALUES (?, ?)",
                            (batch.id, now)).rowcount == 0:
                return False
            conn.execute("DELETE FROM usage_batches WHERE written_at < ?", (_days_ago(BATCH_ID_DAYS),))
            conn.executemany(_ADD_APP_USAGE, [(u.account_id, u.app_id, u.month, u.broadcasts, u.deliveries,
                                               u.peak_connections, now) for u in batch.apps])
            conn.executemany(_ADD_ACCOUNT_MONTH, [(m.account_id, m.month, m.peak_connections, plan_json(m.plan), now)
                                                  for m in batch.accounts])
        return True

    def month_totals(self, month: str) -> dict[str, int]:
        rows = self._rows("SELECT account_id, SUM(broadcasts) FROM usage_apps WHERE month = ? GROUP BY account_id",
                          (month,))
        return {str(account): int(total) for account, total in rows}

    def app_usage(self, month: str, account_id: str | None = None,
                  app_id: str | None = None) -> list[AppUsage]:
        rows = self._rows(f"SELECT {APP_USAGE_COLUMNS} FROM usage_apps WHERE month = ? "
                          "AND (? IS NULL OR account_id = ?) AND (? IS NULL OR app_id = ?) "
                          "ORDER BY account_id, app_id", (month, account_id, account_id, app_id, app_id))
        return [app_usage_from_row(row) for row in rows]

    def account_months(self, month: str, account_id: str | None = None) -> list[AccountMonth]:
        rows = self._rows(f"SELECT {ACCOUNT_MONTH_COLUMNS} FROM usage_accounts WHERE month = ? "
                          "AND (? IS NULL OR account_id = ?) ORDER BY account_id", (month, account_id, account_id))
        return [account_month_from_row(row) for row in rows]

