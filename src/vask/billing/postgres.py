"""The billing tables in the PostgreSQL database that holds the apps (psycopg 3, blocking).

Importing this module needs the optional dependency: ``pip install 'vask[postgres]'``.
"""

from __future__ import annotations

from typing import LiteralString

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
from vask.db.postgres import Connection, PostgresDatabase

# Versioned apart from the app tables; append, never edit a released entry.
MIGRATIONS: tuple[tuple[LiteralString, ...], ...] = (
    (
        """
        CREATE TABLE plans (
            name TEXT PRIMARY KEY,
            monthly_fee_cents BIGINT NOT NULL DEFAULT 0,
            included_broadcasts BIGINT,
            max_connections BIGINT,
            overage_cents_per_million BIGINT,
            description TEXT NOT NULL DEFAULT '',
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE accounts (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL DEFAULT '',
            plan TEXT NOT NULL REFERENCES plans (name),
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """,
        """
        CREATE TABLE usage_apps (
            month TEXT NOT NULL,
            account_id TEXT NOT NULL,
            app_id TEXT NOT NULL,
            broadcasts BIGINT NOT NULL DEFAULT 0,
            deliveries BIGINT NOT NULL DEFAULT 0,
            peak_connections BIGINT NOT NULL DEFAULT 0,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (month, account_id, app_id)
        )
        """,
        """
        CREATE TABLE usage_accounts (
            month TEXT NOT NULL,
            account_id TEXT NOT NULL,
            peak_connections BIGINT NOT NULL DEFAULT 0,
            plan JSONB,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (month, account_id)
        )
        """,
    ),
    (  # 2: batch ids, so a batch written again after a lost answer is not added twice
        "CREATE TABLE usage_batches (id TEXT PRIMARY KEY, written_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        "CREATE INDEX usage_batches_written_at ON usage_batches (written_at)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_ADD_APP_USAGE: LiteralString = (
    f"INSERT INTO usage_apps ({APP_USAGE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (month, account_id, app_id) DO UPDATE SET "
    "broadcasts = usage_apps.broadcasts + excluded.broadcasts, "
    "deliveries = usage_apps.deliveries + excluded.deliveries, "
    "peak_connections = GREATEST(usage_apps.peak_connections, excluded.peak_connections), updated_at = now()")
_ADD_ACCOUNT_MONTH: LiteralString = (
    f"INSERT INTO usage_accounts ({ACCOUNT_MONTH_COLUMNS}) VALUES (%s, %s, %s, %s::jsonb) "
    "ON CONFLICT (month, account_id) DO UPDATE SET "
    "peak_connections = GREATEST(usage_accounts.peak_connections, excluded.peak_connections), "
    "plan = COALESCE(excluded.plan, usage_accounts.plan), updated_at = now()")


class PostgresBillingStore(PostgresDatabase):
    """The billing tables on the shared PostgreSQL plumbing; reads and ``record`` are retried once on a
    dropped connection. If it drops during COMMIT the outcome is unknown; ``record`` can be repeated safely
    (the meter also writes a failed batch again, with the same id), so a batch is never counted twice.
    """

    error = BillingStoreError
    name = "billing store"

    def _setup(self) -> None:
        def work(conn: Connection) -> None:
            self._migrate(conn, "billing_schema_version", MIGRATIONS, "billing schema")
            # Created when missing, never overwritten: operators may have edited them.
            with conn.cursor() as cursor:
                cursor.executemany(f"INSERT INTO plans ({PLAN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
                                   "ON CONFLICT (name) DO NOTHING", [plan_values(p) for p in DEFAULT_PLANS])
            conn.execute(f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
                         (DEFAULT_ACCOUNT.id, DEFAULT_ACCOUNT.name, DEFAULT_ACCOUNT.plan))

        self._run(work, retry=False)

    # -- plans ---------------------------------------------------------------------------------

    def list_plans(self) -> list[Plan]:
        return [plan_from_row(row) for row in self._rows(f"SELECT {PLAN_COLUMNS} FROM plans ORDER BY name")]

    def get_plan(self, name: str) -> Plan | None:
        rows = self._rows(f"SELECT {PLAN_COLUMNS} FROM plans WHERE name = %s", (name,))
        return plan_from_row(rows[0]) if rows else None

    def put_plan(self, plan: Plan) -> Plan:
        self._run(lambda conn: conn.execute(
            f"INSERT INTO plans ({PLAN_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET "
            "monthly_fee_cents = excluded.monthly_fee_cents, included_broadcasts = excluded.included_broadcasts, "
            "max_connections = excluded.max_connections, "
            "overage_cents_per_million = excluded.overage_cents_per_million, "
            "description = excluded.description, updated_at = now()", plan_values(plan)), retry=False)
        return plan

    # -- accounts ------------------------------------------------------------------------------

    def list_accounts(self) -> list[Account]:
        return [account_from_row(row) for row in
                self._rows(f"SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, id")]

    def get_account(self, account_id: str) -> Account | None:
        rows = self._rows(f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = %s", (account_id,))
        return account_from_row(rows[0]) if rows else None

    def create_account(self, account: Account) -> Account:
        def work(conn: Connection) -> None:
            _check_plan(conn, account.plan)
            inserted = conn.execute(f"INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES (%s, %s, %s) "
                                    "ON CONFLICT (id) DO NOTHING", (account.id, account.name, account.plan))
            if inserted.rowcount == 0:
                raise AccountExists(f"an account with id {account.id!r} already exists")

        self._run(work, retry=False)
        return account

    def update_account(self, account: Account) -> Account:
        def work(conn: Connection) -> None:
            _check_plan(conn, account.plan)
            updated = conn.execute("UPDATE accounts SET name = %s, plan = %s, updated_at = now() WHERE id = %s",
                                   (account.name, account.plan, account.id))
            if updated.rowcount == 0:
                raise AccountNotFound(f"no account with id {account.id!r}")

        self._run(work, retry=False)
        return account

    # -- usage ---------------------------------------------------------------------------------

    def record(self, batch: UsageBatch) -> bool:
        if not batch:
            return True

        def work(conn: Connection) -> bool:
            with conn.cursor() as cursor:
                cursor.execute("INSERT INTO usage_batches (id) VALUES (%s) ON CONFLICT (id) DO NOTHING", (batch.id,))
                if cursor.rowcount == 0:
                    return False
                cursor.execute("DELETE FROM usage_batches WHERE written_at < now() - make_interval(days => %s)",
                               (BATCH_ID_DAYS,))
                if batch.apps:
                    cursor.executemany(_ADD_APP_USAGE, [(u.account_id, u.app_id, u.month, u.broadcasts,
                                                         u.deliveries, u.peak_connections) for u in batch.apps])
                if batch.accounts:
                    cursor.executemany(_ADD_ACCOUNT_MONTH, [(m.account_id, m.month, m.peak_connections,
                                                             plan_json(m.plan)) for m in batch.accounts])
            return True

        # Retried like a read: if the first COMMIT went through unseen, the batch id makes the second a no-op.
        return self._run(work, retry=True)

    def month_totals(self, month: str) -> dict[str, int]:
        rows = self._rows("SELECT account_id, SUM(broadcasts) FROM usage_apps WHERE month = %s GROUP BY account_id",
                          (month,))
        return {str(account): int(total) for account, total in rows}

    def app_usage(self, month: str, account_id: str | None = None, app_id: str | None = None) -> list[AppUsage]:
        rows = self._rows(f"SELECT {APP_USAGE_COLUMNS} FROM usage_apps WHERE month = %s "
                          "AND (%s::text IS NULL OR account_id = %s) AND (%s::text IS NULL OR app_id = %s) "
                          "ORDER BY account_id, app_id", (month, account_id, account_id, app_id, app_id))
        return [app_usage_from_row(row) for row in rows]

    def account_months(self, month: str, account_id: str | None = None) -> list[AccountMonth]:
        rows = self._rows(f"SELECT {ACCOUNT_MONTH_COLUMNS} FROM usage_accounts WHERE month = %s "
                          "AND (%s::text IS NULL OR account_id = %s) ORDER BY account_id",
                          (month, account_id, account_id))
        return [account_month_from_row(row) for row in rows]



def _check_plan(conn: Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM plans WHERE name = %s", (name,)).fetchone() is None:
        raise PlanNotFound(f"no plan named {name!r} (see `vask plans list`)")
