"""An AppStore on PostgreSQL (psycopg 3, blocking), for deployments that already run a database.

Importing this module needs the optional dependency: ``pip install 'vask[postgres]'``.
"""

from __future__ import annotations

import builtins
import threading
from typing import Any, LiteralString

try:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb
except ImportError as exc:  # pragma: no cover - the message is tested with psycopg hidden
    raise ImportError("PostgreSQL support needs psycopg 3: pip install 'vask[postgres]'") from exc

from vask.apps._records import app_from_columns, settings_payload
from vask.apps.base import App, AppExists, AppNotFound, AppStoreError

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

# Any constant works: it only serialises Vask processes creating or migrating the schema at the same time.
_MIGRATION_LOCK = 0x7661736B  # "vask"
_COLUMNS: LiteralString = "id, key, secret, name, enabled, settings, account_id"


class PostgresAppStore:
    """Apps in PostgreSQL. ``schema`` (created if missing) isolates Vask's tables, e.g. one per test run.

    One connection shared under a lock, in autocommit mode: every call is a single statement, and the
    server calls in from worker threads. Reads are retried once on a fresh connection when the old one
    has dropped (database restart, idle timeout); writes are not, since their outcome is then unknown.
    """

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: int = 5) -> None:
        self._url = url
        self._schema = schema
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._conn = self._connect()
        try:
            self._migrate()
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=self._connect_timeout)
        except psycopg.Error as exc:
            # The URL is left out of the message: it may carry a password.
            raise AppStoreError(f"cannot connect to PostgreSQL: {exc}") from exc
        if self._schema is not None:
            try:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            except psycopg.Error as exc:
                conn.close()
                raise AppStoreError(f"PostgreSQL: {exc}") from exc
        return conn

    def _migrate(self) -> None:
        try:
            with self._lock, self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                if self._schema is not None:
                    self._conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(self._schema)))
                self._conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                                   "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
                row = self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
                current = int(row[0]) if row is not None else 0
                if current > SCHEMA_VERSION:
                    raise AppStoreError(f"PostgreSQL schema version {current} is newer than this Vask "
                                        f"supports ({SCHEMA_VERSION}); upgrade Vask")
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[version - 1]:
                        self._conn.execute(statement)
                    self._conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        except psycopg.Error as exc:
            raise AppStoreError(f"cannot prepare the PostgreSQL schema: {exc}") from exc

    def _run(self, query: LiteralString, params: tuple[Any, ...], *,
             retry: bool) -> tuple[builtins.list[tuple[Any, ...]], int]:
        """Execute one statement and return (rows, rowcount).

        UniqueViolation passes through for the caller to name the duplicate; other driver errors become
        AppStoreError. Rows are fetched under the lock, while the connection is ours.
        """
        with self._lock:
            if self._closed:
                raise AppStoreError("the PostgreSQL app store is closed")
            for attempt in (1, 2):
                if self._conn.broken or self._conn.closed:
                    self._conn = self._connect()
                try:
                    cursor = self._conn.execute(query, params)
                    return (cursor.fetchall() if cursor.description else []), cursor.rowcount
                except psycopg.errors.UniqueViolation:
                    raise
                except psycopg.OperationalError as exc:
                    if retry and attempt == 1 and self._conn.broken:
                        continue
                    raise AppStoreError(f"PostgreSQL: {exc}") from exc
                except psycopg.Error as exc:
                    raise AppStoreError(f"PostgreSQL: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _one(self, query: LiteralString, value: str) -> App | None:
        rows, _ = self._run(query, (value,), retry=True)
        return app_from_columns(*rows[0]) if rows else None

    def get_by_id(self, app_id: str) -> App | None:
        return self._one(f"SELECT {_COLUMNS} FROM apps WHERE id = %s", app_id)

    def get_by_key(self, key: str) -> App | None:
        return self._one(f"SELECT {_COLUMNS} FROM apps WHERE key = %s", key)

    def create(self, app: App) -> App:
        try:
            self._run(f"INSERT INTO apps ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                      (app.id, app.key, app.secret, app.name, app.enabled, Jsonb(settings_payload(app)),
                       app.account_id), retry=False)
        except psycopg.errors.UniqueViolation as exc:
            raise self._duplicate(app, exc) from exc
        return app.model_copy(deep=True)

    def update(self, app: App) -> App:
        try:
            _, count = self._run(
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
        _, count = self._run("DELETE FROM apps WHERE id = %s", (app_id,), retry=False)
        return count > 0

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()

    # Defined last: inside the class body the name `list` would shadow the builtin in annotations.
    def list(self) -> builtins.list[App]:
        rows, _ = self._run(f"SELECT {_COLUMNS} FROM apps ORDER BY created_at, id", (), retry=True)
        return [app_from_columns(*row) for row in rows]
