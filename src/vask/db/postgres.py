"""One PostgreSQL connection (psycopg 3, blocking) for the app and billing stores, and their migrations.

Importing this module needs the optional dependency: ``pip install 'vask[postgres]'``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, ClassVar, LiteralString, TypeVar

try:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb
except ImportError as exc:  # pragma: no cover - the message is tested with psycopg hidden
    raise ImportError("PostgreSQL support needs psycopg 3: pip install 'vask[postgres]'") from exc

__all__ = ["Connection", "Jsonb", "PostgresDatabase", "psycopg", "sql"]

T = TypeVar("T")
Connection = psycopg.Connection[tuple[Any, ...]]

# Any constant works: it only serialises Vask processes creating or migrating the schema at the same time.
_MIGRATION_LOCK = 0x7661736B  # "vask"


class PostgresDatabase:
    """One connection shared under a lock, in autocommit mode (the server calls in from worker threads).

    ``schema`` (created if missing) isolates Vask's tables, e.g. one per test run. Reads are retried once on a
    fresh connection when the old one has dropped (database restart, idle timeout); writes are not, since
    their outcome is then unknown. Driver errors become ``error``, the store's own exception, except those in
    ``passthrough``; subclasses create their tables in ``_setup``.
    """

    error: ClassVar[type[Exception]] = Exception
    passthrough: ClassVar[tuple[type[Exception], ...]] = ()
    name: ClassVar[str] = "store"

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: int = 5) -> None:
        self._url = url
        self._schema = schema
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._conn = self._connect()
        try:
            self._setup()
        except BaseException:
            self._conn.close()
            raise

    def _setup(self) -> None:
        """Create or upgrade the tables (once, from ``__init__``)."""

    def _connect(self) -> Connection:
        try:
            conn = psycopg.connect(self._url, autocommit=True, connect_timeout=self._connect_timeout)
        except psycopg.Error as exc:
            # The URL is left out of the message: it may carry a password.
            raise self.error(f"cannot connect to PostgreSQL: {exc}") from exc
        if self._schema is not None:
            try:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self._schema)))
            except psycopg.Error as exc:
                conn.close()
                raise self.error(f"PostgreSQL: {exc}") from exc
        return conn

    def _run(self, work: Callable[[Connection], T], *, retry: bool, atomic: bool = True) -> T:
        """Run ``work`` under the lock, in one transaction when ``atomic`` (else as autocommit statements).
        Domain errors pass through; driver errors become ``error``; a dropped connection is retried once when
        ``retry`` (reads, and writes that are safe to repeat). Rows are fetched inside ``work``, while the
        connection is ours."""
        with self._lock:
            for attempt in (1, 2):
                if self._closed:
                    raise self.error(f"the PostgreSQL {self.name} is closed")
                if self._conn.broken or self._conn.closed:
                    self._conn = self._connect()
                conn = self._conn
                try:
                    with conn.transaction() if atomic else nullcontext():
                        return work(conn)
                except self.passthrough:
                    raise
                except psycopg.OperationalError as exc:
                    if retry and attempt == 1 and conn.broken:
                        continue
                    raise self.error(f"PostgreSQL: {exc}") from exc
                except psycopg.Error as exc:
                    raise self.error(f"PostgreSQL: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _rows(self, query: LiteralString, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One read statement's rows (retried on a dropped connection)."""
        return self._run(lambda conn: conn.execute(query, params).fetchall(), retry=True, atomic=False)

    def _migrate(self, conn: Connection, table: LiteralString, migrations: tuple[tuple[LiteralString, ...], ...],
                 what: str) -> None:
        """Apply the ``migrations`` not yet recorded in ``table``, one Vask process at a time (call it inside
        ``_run``: the advisory lock lasts until that transaction ends)."""
        # one lock per version table: the app and billing tables migrate independently
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_MIGRATION_LOCK, table))
        if self._schema is not None:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema)))
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (version INTEGER PRIMARY KEY, "
                             "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())").format(sql.Identifier(table)))
        row = conn.execute(sql.SQL("SELECT COALESCE(MAX(version), 0) FROM {}").format(sql.Identifier(table))
                           ).fetchone()
        current = int(row[0]) if row is not None else 0
        if current > len(migrations):
            raise self.error(f"PostgreSQL {what} version {current} is newer than this Vask supports "
                             f"({len(migrations)}); upgrade Vask")
        for version in range(current + 1, len(migrations) + 1):
            for statement in migrations[version - 1]:
                conn.execute(statement)
            conn.execute(sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(sql.Identifier(table)), (version,))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._conn.close()
