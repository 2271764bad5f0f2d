"""The default AppStore: one SQLite file, usable with no setup."""

from __future__ import annotations

import builtins
import re
import sqlite3

from vask.apps._records import app_from_columns, settings_json
from vask.apps.base import App, AppExists, AppNotFound, AppStoreError
from vask.db.sqlite import SqliteDatabase, now

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


class SqliteAppStore(SqliteDatabase):
    """Apps in a SQLite database file, in WAL mode so the CLI can write while the server reads."""

    error = AppStoreError
    passthrough = (sqlite3.IntegrityError,)  # a duplicate id or key: create/update name the column

    def _setup(self) -> None:
        with self._transaction() as conn:
            self._migrate(conn, "schema_version", MIGRATIONS, "schema")

    def _one(self, where: str, value: str) -> App | None:
        with self._guard():
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM apps WHERE {where} = ?", (value,)).fetchone()
        return app_from_columns(*row) if row is not None else None

    def get_by_id(self, app_id: str) -> App | None:
        return self._one("id", app_id)

    def get_by_key(self, key: str) -> App | None:
        return self._one("key", key)

    def create(self, app: App) -> App:
        stamp = now()
        try:
            with self._guard():
                self._conn.execute(
                    f"INSERT INTO apps ({_COLUMNS}, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (app.id, app.key, app.secret, app.name, int(app.enabled), settings_json(app),
                     app.account_id, stamp, stamp))
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
                     now(), app.id))
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

    # Defined last: inside the class body the name `list` would shadow the builtin in annotations.
    def list(self) -> builtins.list[App]:
        with self._guard():
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM apps ORDER BY created_at, id").fetchall()
        return [app_from_columns(*row) for row in rows]
