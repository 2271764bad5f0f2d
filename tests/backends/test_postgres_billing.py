"""PostgresBillingStore against a real PostgreSQL server, each test in its own throwaway schema.

The server is taken from VASK_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test); when
it cannot be reached every test here is skipped with the connection error as the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from billing_store_contract import PersistentBillingStoreContract
from vask.billing.base import BillingStore, BillingStoreError
from vask.config import mask_url

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'vask[postgres]')")
import psycopg
from psycopg import sql

from vask.apps.postgres import PostgresAppStore
from vask.billing import postgres as pg_billing
from vask.billing.postgres import PostgresBillingStore

pytestmark = pytest.mark.postgres

URL = os.environ.get("VASK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module")
def admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    try:
        conn = psycopg.connect(URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {mask_url(URL)}: {exc}")
    yield conn
    conn.close()


@pytest.fixture
def schema(admin: psycopg.Connection[tuple[object, ...]]) -> Iterator[str]:
    name = f"vask_test_{uuid.uuid4().hex[:12]}"
    yield name
    admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


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
