"""PostgresAppStore against a real PostgreSQL server, each test in its own throwaway schema.

The server and the schemas come from postgres_fixtures (VASK_TEST_DATABASE_URL); when it cannot be reached
every test here is skipped with the connection error as the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from app_store_contract import PersistentAppStoreContract
from vask.apps.base import App, AppSettings, AppStore, AppStoreError

pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'vask[postgres]')")
import psycopg
from postgres_fixtures import URL, admin_fixture, schema_fixture  # noqa: F401  (fixtures)
from psycopg import sql

from vask.apps import postgres as pg_store
from vask.apps.postgres import PostgresAppStore

pytestmark = pytest.mark.postgres


class TestPostgresStore(PersistentAppStoreContract):
    @pytest.fixture
    def store(self, schema: str) -> Iterator[AppStore]:
        store = PostgresAppStore(URL, schema=schema)
        yield store
        store.close()

    @pytest.fixture
    def reopen(self, schema: str) -> Callable[[], AppStore]:
        return lambda: PostgresAppStore(URL, schema=schema)

    def test_schema_layout(self, store: AppStore, schema: str,
                           admin: psycopg.Connection[tuple[object, ...]]) -> None:
        store.create(App(id="a", key="k", secret="s", settings=AppSettings(client_events=True)))
        columns = admin.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = 'apps' ORDER BY ordinal_position", (schema,)).fetchall()
        assert columns == [("id", "text"), ("key", "text"), ("secret", "text"), ("name", "text"),
                           ("enabled", "boolean"), ("settings", "jsonb"),
                           ("created_at", "timestamp with time zone"),
                           ("updated_at", "timestamp with time zone"), ("account_id", "text")]
        query = sql.SQL("SELECT settings->>'client_events', enabled FROM {}")
        row = admin.execute(query.format(sql.Identifier(schema, "apps"))).fetchone()
        assert row == ("true", True)
        versions = admin.execute(sql.SQL("SELECT version FROM {}").format(
            sql.Identifier(schema, "schema_version"))).fetchall()
        assert versions == [(v,) for v in range(1, pg_store.SCHEMA_VERSION + 1)]

    def test_update_moves_updated_at(self, store: AppStore, schema: str,
                                     admin: psycopg.Connection[tuple[object, ...]]) -> None:
        store.create(App(id="a", key="k", secret="s"))
        store.update(App(id="a", key="k", secret="s2"))
        row = admin.execute(sql.SQL("SELECT updated_at > created_at FROM {}").format(
            sql.Identifier(schema, "apps"))).fetchone()
        assert row == (True,)

    def test_upgrades_a_version_1_schema(self, schema: str,
                                         admin: psycopg.Connection[tuple[object, ...]]) -> None:
        # Tables written by a Vask that predates accounts: their apps keep working, on the default account.
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        admin.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        try:
            admin.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                          "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            admin.execute(pg_store.MIGRATIONS[0][0])
            admin.execute("INSERT INTO schema_version (version) VALUES (1)")
            admin.execute("INSERT INTO apps (id, key, secret) VALUES ('old', 'old-key', 's')")
        finally:
            admin.execute("RESET search_path")
        store = PostgresAppStore(URL, schema=schema)
        try:
            app = store.get_by_key("old-key")
            assert app is not None and app.account_id is None
            store.update(app.model_copy(update={"account_id": "acme"}))
            moved = store.get_by_id("old")
            assert moved is not None and moved.account_id == "acme"
        finally:
            store.close()
        versions = admin.execute(sql.SQL("SELECT version FROM {} ORDER BY version").format(
            sql.Identifier(schema, "schema_version"))).fetchall()
        assert versions == [(v,) for v in range(1, pg_store.SCHEMA_VERSION + 1)]

    def test_refuses_a_newer_schema(self, store: AppStore, schema: str,
                                    admin: psycopg.Connection[tuple[object, ...]]) -> None:
        store.close()
        admin.execute(sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(
            sql.Identifier(schema, "schema_version")), (pg_store.SCHEMA_VERSION + 1,))
        with pytest.raises(AppStoreError, match="newer than this Vask supports"):
            PostgresAppStore(URL, schema=schema)

    def test_reads_survive_a_dropped_connection(self, store: AppStore,
                                                admin: psycopg.Connection[tuple[object, ...]]) -> None:
        store.create(App(id="a", key="k", secret="s"))
        assert isinstance(store, PostgresAppStore)
        pid = store._conn.info.backend_pid
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        fetched = store.get_by_key("k")
        assert fetched is not None and fetched.id == "a"
        assert store._conn.info.backend_pid != pid

    def test_closed_store_raises_store_error(self, store: AppStore) -> None:
        store.close()
        with pytest.raises(AppStoreError, match="closed"):
            store.list()


def test_unreachable_server_is_a_store_error() -> None:
    # Port 1 on localhost: nothing listens there, so the connection is refused at once.
    with pytest.raises(AppStoreError, match="cannot connect to PostgreSQL") as info:
        PostgresAppStore("postgresql://vask:hunter2@127.0.0.1:1/test", connect_timeout=2)
    assert "hunter2" not in str(info.value)
