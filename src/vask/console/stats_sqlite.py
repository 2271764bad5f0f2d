"""The stats tables in the SQLite file that holds the apps (versioned apart, in stats_schema_version)."""

from __future__ import annotations

from vask.console.stats_store import Counts, StatsRow, StatsStoreError, day_of
from vask.db.sqlite import SqliteDatabase

# Each entry upgrades the stats schema by one version; append, never edit a released entry.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE stats_minutes (
            app_id TEXT NOT NULL,
            minute INTEGER NOT NULL,
            node TEXT NOT NULL,
            broadcasts INTEGER NOT NULL DEFAULT 0,
            deliveries INTEGER NOT NULL DEFAULT 0,
            peak_connections INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (app_id, minute, node)
        )
        """,
        """
        CREATE TABLE stats_days (
            app_id TEXT NOT NULL,
            day TEXT NOT NULL,
            node TEXT NOT NULL,
            broadcasts INTEGER NOT NULL DEFAULT 0,
            deliveries INTEGER NOT NULL DEFAULT 0,
            peak_connections INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (app_id, day, node)
        )
        """,
        "CREATE INDEX stats_minutes_by_minute ON stats_minutes (minute)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_UPSERT = ("INSERT INTO {table} (app_id, {key}, node, broadcasts, deliveries, peak_connections) "
           "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (app_id, {key}, node) DO UPDATE SET "
           "broadcasts = broadcasts + excluded.broadcasts, deliveries = deliveries + excluded.deliveries, "
           "peak_connections = MAX(peak_connections, excluded.peak_connections)")
_ADD_MINUTE = _UPSERT.format(table="stats_minutes", key="minute")
_ADD_DAY = _UPSERT.format(table="stats_days", key="day")


class SqliteStatsStore(SqliteDatabase):
    error = StatsStoreError

    def _setup(self) -> None:
        with self._transaction() as conn:
            self._migrate(conn, "stats_schema_version", MIGRATIONS, "stats schema")

    def record(self, rows: list[StatsRow]) -> None:
        if not rows:
            return
        with self._transaction() as conn:
            conn.executemany(_ADD_MINUTE, [(r.app_id, r.minute, r.node, r.broadcasts, r.deliveries,
                                            r.peak_connections) for r in rows])
            conn.executemany(_ADD_DAY, [(r.app_id, day_of(r.minute), r.node, r.broadcasts, r.deliveries,
                                         r.peak_connections) for r in rows])

    def minute_counts(self, app_id: str, since: int, until: int) -> dict[int, Counts]:
        with self._guard():
            rows = self._conn.execute(
                "SELECT minute, SUM(broadcasts), SUM(deliveries), MAX(peak_connections) FROM stats_minutes "
                "WHERE app_id = ? AND minute >= ? AND minute < ? GROUP BY minute", (app_id, since, until)).fetchall()
        return {int(m): (int(b), int(d), int(p)) for m, b, d, p in rows}

    def day_counts(self, app_id: str, first_day: str, last_day: str) -> dict[str, Counts]:
        with self._guard():
            rows = self._conn.execute(
                "SELECT day, SUM(broadcasts), SUM(deliveries), MAX(peak_connections) FROM stats_days "
                "WHERE app_id = ? AND day >= ? AND day <= ? GROUP BY day", (app_id, first_day, last_day)).fetchall()
        return {str(day): (int(b), int(d), int(p)) for day, b, d, p in rows}

    def prune_minutes(self, before: int) -> int:
        with self._transaction() as conn:
            return int(conn.execute("DELETE FROM stats_minutes WHERE minute < ?", (before,)).rowcount)
