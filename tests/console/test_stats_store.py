"""The StatsStore implementations (memory, SQLite, PostgreSQL): additive rows, UTC days, pruning, and stats
that survive a restart of the server."""

from __future__ import annotations

import calendar
import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vask.apps.base import App
from vask.console.stats import StatsQuery, StatsRecorder
from vask.console.stats_sqlite import SqliteStatsStore
from vask.console.stats_store import MemoryStatsStore, StatsRow, StatsStore, StatsStoreError

PG_URL = os.environ.get("VASK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
M = calendar.timegm((2026, 5, 31, 23, 59, 0))  # the last minute of May (UTC)


def open_postgres() -> Iterator[StatsStore]:
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    from vask.console.stats_postgres import PostgresStatsStore

    schema = f"vask_test_{uuid.uuid4().hex[:12]}"
    store = PostgresStatsStore(PG_URL, schema=schema)
    try:
        yield store
    finally:
        store.close()
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StatsStore]:
    if request.param == "memory":
        yield MemoryStatsStore()
    elif request.param == "sqlite":
        sqlite_store = SqliteStatsStore(tmp_path / "vask.db")
        yield sqlite_store
        sqlite_store.close()
    else:
        yield from open_postgres()


def test_rows_add_up_per_minute_and_day_summed_over_nodes(store: StatsStore) -> None:
    store.record([StatsRow("a", M, "n1", 1, 10, 5), StatsRow("a", M, "n2", 2, 20, 7),
                  StatsRow("a", M + 60, "n1", 4, 40, 2), StatsRow("b", M, "n1", 100, 100, 100)])
    store.record([StatsRow("a", M, "n1", 1, 1, 3)])  # a second flush of the same minute adds; peak stays 5
    assert store.minute_counts("a", M, M + 120) == {M: (4, 31, 7), M + 60: (4, 40, 2)}
    assert store.minute_counts("a", M, M + 60) == {M: (4, 31, 7)}
    # M is the last minute of May 31st, M + 60 the first of June 1st (UTC days).
    assert store.day_counts("a", "2026-05-01", "2026-05-31") == {"2026-05-31": (4, 31, 7)}
    assert store.day_counts("a", "2026-06-01", "2026-06-30") == {"2026-06-01": (4, 40, 2)}
    assert store.day_counts("zzz", "2026-05-01", "2026-06-30") == {}


def test_prune_keeps_days(store: StatsStore) -> None:
    store.record([StatsRow("a", M, "n1", 1, 1, 1), StatsRow("a", M + 60, "n1", 2, 2, 2)])
    assert store.prune_minutes(M + 60) == 1
    assert store.minute_counts("a", 0, M + 120) == {M + 60: (2, 2, 2)}
    assert store.day_counts("a", "2026-05-31", "2026-05-31") == {"2026-05-31": (1, 1, 1)}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class NoHub:
    apps: dict[str, object] = {}

    def app_connections(self, app_id: str) -> int:
        return 0


@pytest.mark.asyncio(loop_scope="function")
async def test_stats_survive_a_restart(tmp_path: Path) -> None:
    """Counted by one process, written on its graceful stop; read back by the next one from the SQLite file."""
    clock = Clock(M + 5)
    first = SqliteStatsStore(tmp_path / "vask.db")
    recorder = StatsRecorder(first, "n1", hub=NoHub(), clock=clock)  # type: ignore[arg-type]
    await recorder.start()
    app = App(id="a", key="k", secret="s")
    for _ in range(3):
        recorder.broadcast(app, "c", 2)
    recorder.connections("a", 9)
    await recorder.stop()  # the final flush
    first.close()

    second = SqliteStatsStore(tmp_path / "vask.db")
    query = StatsQuery(second, NoHub(), clock=clock)  # type: ignore[arg-type]
    assert (await query.minutes("a", M, M))[0] == {"at": M, "broadcasts": 3, "deliveries": 6,
                                                   "peak_connections": 9}
    assert await query.peak_connections("a", "2026-05") == 9
    second.close()


def test_sqlite_schema_version_table(tmp_path: Path) -> None:
    SqliteStatsStore(tmp_path / "vask.db").close()
    conn = sqlite3.connect(tmp_path / "vask.db")
    assert conn.execute("SELECT MAX(version) FROM stats_schema_version").fetchone() == (1,)
    conn.execute("INSERT INTO stats_schema_version VALUES (99, 'x')")
    conn.commit()
    conn.close()
    with pytest.raises(StatsStoreError, match="stats schema version 99, newer than this Vask supports"):
        SqliteStatsStore(tmp_path / "vask.db")
