"""The SQLite and in-memory app stores: the shared AppStore contract plus what is specific to each."""

from __future__ import annotations

import importlib
import json
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app_store_contract import AppStoreContract, PersistentAppStoreContract
from vask.apps import sqlite as sqlite_store
from vask.apps.base import App, AppSettings, AppStore, AppStoreError
from vask.apps.memory import MemoryAppStore
from vask.apps.sqlite import SqliteAppStore


class TestMemoryStore(AppStoreContract):
    @pytest.fixture
    def store(self) -> AppStore:
        return MemoryAppStore()

    def test_seeded_from_constructor(self) -> None:
        apps = [App(id="a", key="ka", secret="s"), App(id="b", key="kb", secret="s")]
        store = MemoryAppStore(apps)
        assert [a.id for a in store.list()] == ["a", "b"]


class TestSqliteStore(PersistentAppStoreContract):
    @pytest.fixture
    def db_path(self, tmp_path: Path) -> Path:
        return tmp_path / "nested" / "dir" / "vask.db"

    @pytest.fixture
    def store(self, db_path: Path) -> Iterator[AppStore]:
        store = SqliteAppStore(db_path)
        yield store
        store.close()

    @pytest.fixture
    def reopen(self, db_path: Path) -> Callable[[], AppStore]:
        return lambda: SqliteAppStore(db_path)

    def test_creates_directory_and_uses_wal(self, store: AppStore, db_path: Path) -> None:
        assert db_path.is_file()
        with sqlite3.connect(db_path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    def test_schema_layout(self, store: AppStore, db_path: Path) -> None:
        store.create(App(id="a", key="k", secret="s", settings=AppSettings(client_events=True)))
        with sqlite3.connect(db_path) as raw:
            columns = [row[1] for row in raw.execute("PRAGMA table_info(apps)")]
            assert columns == ["id", "key", "secret", "name", "enabled", "settings", "created_at",
                               "updated_at", "account_id"]
            versions = [row[0] for row in raw.execute("SELECT version FROM schema_version")]
            assert versions == list(range(1, sqlite_store.SCHEMA_VERSION + 1))
            settings, created, updated = raw.execute(
                "SELECT settings, created_at, updated_at FROM apps").fetchone()
        assert json.loads(settings)["client_events"] is True
        assert created == updated

    def test_update_moves_updated_at_only(self, store: AppStore, db_path: Path) -> None:
        store.create(App(id="a", key="k", secret="s"))
        store.update(App(id="a", key="k", secret="s2"))
        with sqlite3.connect(db_path) as raw:
            created, updated = raw.execute("SELECT created_at, updated_at FROM apps").fetchone()
        assert updated > created

    def test_reopen_does_not_reapply_migrations(self, store: AppStore, db_path: Path) -> None:
        store.close()
        SqliteAppStore(db_path).close()
        with sqlite3.connect(db_path) as raw:
            assert raw.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == sqlite_store.SCHEMA_VERSION

    def test_upgrades_a_version_1_database(self, db_path: Path) -> None:
        # A file written by a Vask that predates accounts: its apps keep working, on the default account.
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(db_path) as raw:
            raw.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            raw.execute(sqlite_store.MIGRATIONS[0][0])
            raw.execute("INSERT INTO schema_version VALUES (1, 'then')")
            raw.execute("INSERT INTO apps (id, key, secret, name, enabled, settings, created_at, updated_at) "
                        "VALUES ('old', 'old-key', 's', 'Old', 1, '{\"client_events\": true}', 't', 't')")
        store = SqliteAppStore(db_path)
        try:
            app = store.get_by_key("old-key")
            assert app is not None and app.account_id is None and app.settings.client_events
            store.update(app.model_copy(update={"account_id": "acme"}))
            moved = store.get_by_id("old")
            assert moved is not None and moved.account_id == "acme"
        finally:
            store.close()
        with sqlite3.connect(db_path) as raw:
            versions = [row[0] for row in raw.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, sqlite_store.SCHEMA_VERSION + 1))

    def test_refuses_a_newer_schema(self, store: AppStore, db_path: Path) -> None:
        store.close()
        with sqlite3.connect(db_path) as raw:
            raw.execute("INSERT INTO schema_version VALUES (?, 'later')", (sqlite_store.SCHEMA_VERSION + 1,))
        with pytest.raises(AppStoreError, match="newer than this Vask supports"):
            SqliteAppStore(db_path)

    def test_not_a_database(self, tmp_path: Path) -> None:
        bogus = tmp_path / "vask.db"
        bogus.write_bytes(b"this is not sqlite" * 100)
        with pytest.raises(AppStoreError, match="not a database"):
            SqliteAppStore(bogus)

    def test_unusable_path(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        with pytest.raises(AppStoreError, match="cannot open SQLite database"):
            SqliteAppStore(blocker / "vask.db")

    def test_closed_store_raises_store_error(self, store: AppStore) -> None:
        store.close()
        with pytest.raises(AppStoreError):
            store.list()


def test_postgres_module_without_psycopg_explains_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import psycopg` fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    for module in ("vask.apps.postgres", "vask.db.postgres"):  # (the second holds the psycopg import)
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(ImportError, match=r"vask\[postgres\]"):
        importlib.import_module("vask.apps.postgres")
