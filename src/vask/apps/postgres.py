"""An AppStore on PostgreSQL (psycopg 3, blocking), for deployments that already run a database.

Importing this module needs the optional dependency: ``pip install 'vask[postgres]'``.
"""

from __future__ import annotations

import builtins
from typing import Any, LiteralString

from vask.apps._records import app_from_columns, settings_payload
from vask.apps.base import App, AppExists, AppNotFound, AppStoreError
from vask.db.postgres import Connection, Jsonb, PostgresDatabase, psycopg  # says which extra is missing

# Each entry upgrades the schema by one version; append, never edit a released entry.
MIGRATIONS: tuple[tuple[LiteralString, ...], ...] = (
    (
        """
        CREATE TABLE apps (
            id TEXT NOT NULL,
            key TEXT NOT NULL,
            secret TEXT NOT NULL,
            name TEXT NOT NULL DEFAULT '',
            enabled BOOLEAN NOT NULL DEFAULT TRUE,
            settings JSONB NOT NULL DEFAULT '{}'::jsonb,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            CONSTRAINT apps_pkey PRIMARY KEY (id),
            CONSTRAINT apps_key_unique UNIQUE (key)
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

_COLUMNS: LiteralString = "id, key, secret, name, enabled, settings, account_id"


class PostgresAppStore(PostgresDatabase):
    """Apps in PostgreSQL; every call is a single statement (autocommit)."""

    error = AppStoreError
    passthrough = (psycopg.errors.UniqueViolation,)  # a duplicate id or key: create/update name the constraint
    name = "app store"

    def _setup(self) -> None:
        self._run(lambda conn: self._migrate(conn, "schema_version", MIGRATIONS, "schema"), retry=False)

    def _statement(self, query: LiteralString, params: tuple[Any, ...], *,
                   retry: bool) -> tuple[builtins.list[tuple[Any, ...]], int]:
        """Execute one statement and return (rows, rowcount)."""

        def work(conn: Connection) -> tuple[builtins.list[tuple[Any, ...]], int]:
            cursor = conn.execute(query, params)
            return (cursor.fetchall() if cursor.description else []), cursor.rowcount

        return self._run(work, retry=retry, atomic=False)

    def _one(self, query: LiteralString, value: str) -> App | None:
        rows, _ = self._statement(query, (value,), retry=True)
        return app_from_columns(*rows[0]) if rows else None

    def get_by_id(self, app_id: str) -> App | None:
        return self._one(f"SELECT {_COLUMNS} FROM apps WHERE id = %s", app_id)

    def get_by_key(self, key: str) -> App | None:
        return self._one(f"SELECT {_COLUMNS} FROM apps WHERE key = %s", key)

    def create(self, app: App) -> App:
        try:
            self._statement(f"INSERT INTO apps ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                      (app.id, app.key, app.secret, app.name, app.enabled, Jsonb(settings_payload(app)),
                       app.account_id), retry=False)
        except psycopg.errors.UniqueViolation as exc:
            raise self._duplicate(app, exc) from exc
        return app.model_copy(deep=True)

    def update(self, app: App) -> App:
        try:
            _, count = self._statement(
                "UPDATE apps SET key = %s, secret = %s, name = %s, enabled = %s, settings = %s, "
                "account_id = %s, updated_at = now() WHERE id = %s",
                (app.key, app.secret, app.name, app.enabled, Jsonb(settings_payload(app)), app.account_id,
                 app.id),
                retry=False)
        except psycopg.errors.UniqueViolation as exc:
            raise self._duplicate(app, exc) from exc
        if count == 0:
            raise AppNotFound(f"no app with id {app.id!r}")
        return app.model_copy(deep=True)

    @staticmethod
    def _duplicate(app: App, exc: psycopg.errors.UniqueViolation) -> AppExists:
        if exc.diag.constraint_name == "apps_key_unique":
            return AppExists(f"an app with key {app.key!r} already exists")
        return AppExists(f"an app with id {app.id!r} already exists")

    def delete(self, app_id: str) -> bool:
        _, count = self._statement("DELETE FROM apps WHERE id = %s", (app_id,), retry=False)
        return count > 0

    # Defined last: inside the class body the name `list` would shadow the builtin in annotations.
    def list(self) -> builtins.list[App]:
        rows, _ = self._statement(f"SELECT {_COLUMNS} FROM apps ORDER BY created_at, id", (), retry=True)
        return [app_from_columns(*row) for row in rows]
