"""The default AppStore: one SQLite file, usable with no setup."""

from __future__ import annotations

import builtins
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from vask.apps._records import app_from_columns, settings_json
from vask.apps.base import App, AppExists, AppNotFound, AppStoreError

# Each entry upgrades the schema by one version; append, never edit a released entry.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE apps (
            id TEXT PRIMARY KEY,
            key TEXT NOT NULL UNIQUE,
            secret TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
            settings TEXT NOT NULL DEFAULT '{}',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
    ),
    (
        # 2: apps belong to billing accounts; NULL (every existing app) is the built-in default account.
        "ALTER TABLE apps ADD COLUMN account_id TEXT",
        "CREATE INDEX apps_account_id ON apps (account_id)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = "id, key, secret, name, enabled, settings, account_id"
_UNIQUE_COLUMN = re.compile(r"UNIQUE constraint failed: apps\.(\w+)")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SqliteAppStore:
    """Apps in a SQLite database file, in WAL mode so the CLI can write while the server reads.

    One connection shared under a lock: the server calls in from worker threads (``asyncio.to_thread``)
    and SQLite connections must not be used by two threads at once.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path).expanduser() if str(path) != ":memory:" else Path(":memory:")
        self._lock = threading.Lock()
        try:
            if str(self.path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves; the timeout waits out other writers.
            self._conn = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None,
                                         check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise AppStoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        try:
            with self._guard():
                self._conn.execute("PRAGMA journal_mode=WAL")
                # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose
                # the last commits, which is acceptable for rarely written app records.
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise access to the connection and report driver failures as AppStoreError."""
        with self._lock:
            try:
                yield
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as exc:
                raise AppStoreError(f"SQLite database {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        with self._guard():
            # IMMEDIATE takes the write lock up front, so two processes opening a new file do not both
            # try to create the tables.
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                                   "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
                row = self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
                current = int(row[0])
                if current > SCHEMA_VERSION:
                    raise AppStoreError(f"SQLite database {self.path} has schema version {current}, "
                                        f"newer than this Vask supports ({SCHEMA_VERSION}); upgrade Vask")
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[version - 1]:
                        self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                                       (version, _now()))
                self._conn.execute("COMMIT")
            except BaseException:
                # Keep the original error: a failed ROLLBACK (no transaction left) says nothing new.
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise

    def _one(self, where: str, value: str) -> App | None:
        with self._guard():
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM apps WHERE {where} = ?", (value,)).fetchone()
        return app_from_columns(*row) if row is not None else None

    def get_by_id(self, app_id: str) -> App | None:
        return self._one("id", app_id)

    def get_by_key(self, key: str) -> App | None:
        return self._one("key", key)

    def create(self, app: App) -> App:
        now = _now()
        try:
            with self._guard():
                self._conn.execute(
                    f"INSERT INTO apps ({_COLUMNS}, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (app.id, app.key, app.secret, app.name, int(app.enabled), settings_json(app),
                     app.account_id, now, now))
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(app, exc) from exc
        return app.model_copy(deep=True)

    def update(self, app: App) -> App:
        try:
            with self._guard():
                cursor = self._conn.execute(
                    "UPDATE apps SET key = ?, secret = ?, name = ?, enabled = ?, settings = ?, account_id = ?, "
                    "updated_at = ? WHERE id = ?",
                    (app.key, app.secret, app.name, int(app.enabled), settings_json(app), app.account_id,
                     _now(), app.id))
        except sqlite3.IntegrityError as exc:
            raise self._duplicate(app, exc) from exc
        if cursor.rowcount == 0:
            raise AppNotFound(f"no app with id {app.id!r}")
        return app.model_copy(deep=True)

    @staticmethod
    def _duplicate(app: App, exc: sqlite3.IntegrityError) -> AppExists:
        match = _UNIQUE_COLUMN.search(str(exc))
        column = match.group(1) if match else "id"
        value = app.key if column == "key" else app.id
        return AppExists(f"an app with {column} {value!r} already exists")

    def delete(self, app_id: str) -> bool:
        with self._guard():
            cursor = self._conn.execute("DELETE FROM apps WHERE id = ?", (app_id,))
        return cursor.rowcount > 0

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # Defined last: inside the class body the name `list` would shadow the builtin in annotations.
    def list(self) -> builtins.list[App]:
        with self._guard():
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM apps ORDER BY created_at, id").fetchall()
        return [app_from_columns(*row) for row in rows]
