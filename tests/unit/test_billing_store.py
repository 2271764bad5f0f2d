"""The in-memory and SQLite billing stores: the shared contract plus what is specific to SQLite."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from billing_store_contract import BillingStoreContract, PersistentBillingStoreContract
from vask.apps.base import App
from vask.apps.sqlite import SqliteAppStore
from vask.billing import sqlite as sqlite_billing
from vask.billing.base import BillingStore, BillingStoreError
from vask.billing.memory import MemoryBillingStore
from vask.billing.sqlite import SqliteBillingStore
from vask.config import Settings
from vask.factory import open_billing_store


class TestMemoryBillingStore(BillingStoreContract):
    @pytest.fixture
    def billing(self) -> BillingStore:
        return MemoryBillingStore()


class TestSqliteBillingStore(PersistentBillingStoreContract):
    @pytest.fixture
    def db_path(self, tmp_path: Path) -> Path:
        return tmp_path / "vask.db"

    @pytest.fixture
    def billing(self, db_path: Path) -> Iterator[BillingStore]:
        store = SqliteBillingStore(db_path)
        yield store
        store.close()

    @pytest.fixture
    def reopen_billing(self, db_path: Path) -> Callable[[], BillingStore]:
        return lambda: SqliteBillingStore(db_path)

    def test_shares_the_file_with_the_app_store(self, billing: BillingStore, db_path: Path) -> None:
        apps = SqliteAppStore(db_path)
        try:
            apps.create(App(id="a", key="k", secret="s", account_id="default"))
        finally:
            apps.close()
        with sqlite3.connect(db_path) as raw:
            tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            assert {"apps", "schema_version", "plans", "accounts", "usage_apps", "usage_accounts",
                    "billing_schema_version"} <= tables
            versions = [row[0] for row in raw.execute("SELECT version FROM billing_schema_version")]
        assert versions == list(range(1, sqlite_billing.SCHEMA_VERSION + 1))

    def test_refuses_a_newer_schema(self, billing: BillingStore, db_path: Path) -> None:
        billing.close()
        with sqlite3.connect(db_path) as raw:
            raw.execute("INSERT INTO billing_schema_version VALUES (?, 'later')", (sqlite_billing.SCHEMA_VERSION + 1,))
        with pytest.raises(BillingStoreError, match="newer than this Vask supports"):
            SqliteBillingStore(db_path)

    def test_not_a_database(self, tmp_path: Path) -> None:
        bogus = tmp_path / "vask.db"
        bogus.write_bytes(b"this is not sqlite" * 100)
        with pytest.raises(BillingStoreError, match="not a database"):
            SqliteBillingStore(bogus)


def test_factory_opens_the_configured_kind(tmp_path: Path) -> None:
    store = open_billing_store(Settings(data_dir=tmp_path))
    try:
        assert isinstance(store, SqliteBillingStore) and store.path == tmp_path / "vask.db"
    finally:
        store.close()
    assert isinstance(open_billing_store(Settings(database_url="memory://")), MemoryBillingStore)
