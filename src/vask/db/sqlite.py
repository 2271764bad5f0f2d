"""One SQLite file in WAL mode behind one connection, for the app and billing stores (both live in it)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class SqliteDatabase:
    """A SQLite file behind one connection shared under a lock: the server calls in from worker threads
    (``asyncio.to_thread``) and a SQLite connection must not be used by two threads at once.

    Driver errors become ``error``, the store's own exception, except those in ``passthrough``, which the store
    turns into something more precise itself. Subclasses create their tables in ``_setup``.
    """

    error: ClassVar[type[Exception]] = Exception
    passthrough: ClassVar[tuple[type[Exception], ...]] = ()

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
            raise self.error(f"cannot open SQLite database {self.path}: {exc}") from exc
        try:
            with self._guard():
                # WAL lets the CLI write while the server reads. NORMAL is durable across a crash of the
                # process (kill -9) in WAL mode; only an OS crash can lose the last commits. The usage
                # ledger's crash bound relies on this.
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
            self._setup()
        except BaseException:
            self._conn.close()
            raise

    def _setup(self) -> None:
        """Create or upgrade the tables (once, from ``__init__``)."""

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise access to the connection and report driver failures as ``error``."""
        with self._lock:
            try:
                yield
            except self.passthrough:
                raise
            except sqlite3.Error as exc:
                raise self.error(f"SQLite database {self.path}: {exc}") from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT under the lock: the write lock is taken up front, so read-then-write
        steps (plan checks, migrations of a new file by two processes) cannot interleave with another process."""
        with self._guard():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # Keep the original error: a failed ROLLBACK (no transaction left) says nothing new.
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                raise

    def _migrate(self, conn: sqlite3.Connection, table: str, migrations: tuple[tuple[str, ...], ...],
                 what: str) -> None:
        """Apply the ``migrations`` not yet recorded in ``table`` (each entry upgrades ``what`` by one version)."""
        conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        current = int(conn.execute(f"SELECT COALESCE(MAX(version), 0) FROM {table}").fetchone()[0])
        if current > len(migrations):
            raise self.error(f"SQLite database {self.path} has {what} version {current}, newer than this Vask "
                             f"supports ({len(migrations)}); upgrade Vask")
        for version in range(current + 1, len(migrations) + 1):
            for statement in migrations[version - 1]:
                conn.execute(statement)
            conn.execute(f"INSERT INTO {table} (version, applied_at) VALUES (?, ?)", (version, now()))

    def close(self) -> None:
        with self._lock:
            self._conn.close()
