"""PostgresBillingStore against a real PostgreSQL server, each test in its own throwaway schema.

The server and the schemas come from postgres_fixtures (VASK_TEST_DATABASE_URL); when it cannot be reached
every test here is skipped with the connection error as the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from billing_store_contract import PersistentBillingStoreContract
from vask.billing.base import BillingStore, BillingStoreError

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'vask[postgres]')")
import psycopg
from postgres_fixtures import URL, admin_fixture, schema_fixture  # noqa: F401  (fixtures)
from psycopg import sql

from vask.apps.postgres import PostgresAppStore
from vask.billing import postgres as pg_billing
from vask.billing.postgres import PostgresBillingStore

pytestmark = pytest.mark.postgres


class TestPostgresBillingStore(PersistentBillingStoreContract):
    @pytest.fixture
    def billing(self, schema: str) -> Iterator[BillingStore]:
        store = PostgresBillingStore(URL, schema=schema)
        yield store
        store.close()

    @pytest.fixture
    def reopen_billing(self, schema: str) -> Callable[[], BillingStore]:
        return lambda: PostgresBillingStore(URL, schema=schema)

    def test_lives_beside_the_app_tables(self, billing: BillingStore, schema: str,
                                         admin: psycopg.Connection[tuple[object, ...]]) -> None:
        PostgresAppStore(URL, schema=schema).close()
        tables = {row[0] for row in admin.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)).fetchall()}
        assert {"apps", "schema_version", "plans", "accounts", "usage_apps", "usage_accounts",
                "billing_schema_version"} <= tables
        versions = admin.execute(sql.SQL("SELECT version FROM {}").format(
            sql.Identifier(schema, "billing_schema_version"))).fetchall()
        assert versions == [(v,) for v in range(1, pg_billing.SCHEMA_VERSION + 1)]

    def test_refuses_a_newer_schema(self, billing: BillingStore, schema: str,
                                    admin: psycopg.Connection[tuple[object, ...]]) -> None:
        billing.close()
        admin.execute(sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(
            sql.Identifier(schema, "billing_schema_version")), (pg_billing.SCHEMA_VERSION + 1,))
        with pytest.raises(BillingStoreError, match="newer than this Vask supports"):
            PostgresBillingStore(URL, schema=schema)

    def test_reads_survive_a_dropped_connection(self, billing: BillingStore,
                                                admin: psycopg.Connection[tuple[object, ...]]) -> None:
        assert isinstance(billing, PostgresBillingStore)
        pid = billing._conn.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert [p.name for p in billing.list_plans()] == ["free", "pro", "unlimited"]
        assert billing._conn.info.backend_pid != pid

    def test_closed_store_raises_store_error(self, billing: BillingStore) -> None:
        billing.close()
        with pytest.raises(BillingStoreError, match="closed"):
            billing.list_plans()


def test_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(BillingStoreError, match="cannot connect to PostgreSQL") as info:
        PostgresBillingStore("postgresql://vask:hunter2@127.0.0.1:1/test", connect_timeout=2)
    assert "hunter2" not in str(info.value)
