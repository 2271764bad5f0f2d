"""The stats tables in PostgreSQL (versioned apart, in stats_schema_version). Needs ``vask[postgres]``."""

from __future__ import annotations

from typing import LiteralString

from vask.console.stats_store import Counts, StatsRow, StatsStoreError, day_of
from vask.db.postgres import Connection, PostgresDatabase

MIGRATIONS: tuple[tuple[LiteralString, ...], ...] = (
    (
        """
        CREATE TABLE stats_minutes (
            app_id TEXT NOT NULL,
            minute BIGINT NOT NULL,
            node TEXT NOT NULL,
            broadcasts BIGINT NOT NULL DEFAULT 0,
            deliveries BIGINT NOT NULL DEFAULT 0,
            peak_connections BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (app_id, minute, node)
        )
        """,
        """
        CREATE TABLE stats_days (
            app_id TEXT NOT NULL,
            day TEXT NOT NULL,
            node TEXT NOT NULL,
            broadcasts BIGINT NOT NULL DEFAULT 0,
            deliveries BIGINT NOT NULL DEFAULT 0,
            peak_connections BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (app_id, day, node)
        )
        """,
        "CREATE INDEX stats_minutes_by_minute ON stats_minutes (minute)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_ADD_MINUTE: LiteralString = (
    "INSERT INTO stats_minutes (app_id, minute, node, broadcasts, deliveries, peak_connections) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (app_id, minute, node) DO UPDATE SET "
    "broadcasts = stats_minutes.broadcasts + excluded.broadcasts, "
    "deliveries = stats_minutes.deliveries + excluded.deliveries, "
    "peak_connections = GREATEST(stats_minutes.peak_connections, excluded.peak_connections)")
_ADD_DAY: LiteralString = (
    "INSERT INTO stats_days (app_id, day, node, broadcasts, deliveries, peak_connections) "
    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (app_id, day, node) DO UPDATE SET "
    "broadcasts = stats_days.broadcasts + excluded.broadcasts, "
    "deliveries = stats_days.deliveries + excluded.deliveries, "
    "peak_connections = GREATEST(stats_days.peak_connections, excluded.peak_connections)")


class PostgresStatsStore(PostgresDatabase):
    """``record`` is not retried on a dropped connection (its outcome is unknown); the recorder keeps the
    rows and writes them again, so such a failure can count a flush twice, never lose it."""

    error = StatsStoreError
    name = "stats store"

    def _setup(self) -> None:
        self._run(lambda conn: self._migrate(conn, "stats_schema_version", MIGRATIONS, "stats schema"),
                  retry=False)

    def record(self, rows: list[StatsRow]) -> None:
        if not rows:
            return

        def work(conn: Connection) -> None:
            with conn.cursor() as cursor:
                cursor.executemany(_ADD_MINUTE, [(r.app_id, r.minute, r.node, r.broadcasts, r.deliveries,
                                                  r.peak_connections) for r in rows])
                cursor.executemany(_ADD_DAY, [(r.app_id, day_of(r.minute), r.node, r.broadcasts, r.deliveries,
                                               r.peak_connections) for r in rows])

        self._run(work, retry=False)

    def minute_counts(self, app_id: str, since: int, until: int) -> dict[int, Counts]:
        rows = self._rows("SELECT minute, SUM(broadcasts), SUM(deliveries), MAX(peak_connections) FROM stats_minutes "
                          "WHERE app_id = %s AND minute >= %s AND minute < %s GROUP BY minute", (app_id, since, until))
        return {int(m): (int(b), int(d), int(p)) for m, b, d, p in rows}

    def day_counts(self, app_id: str, first_day: str, last_day: str) -> dict[str, Counts]:
        rows = self._rows("SELECT day, SUM(broadcasts), SUM(deliveries), MAX(peak_connections) FROM stats_days "
                          "WHERE app_id = %s AND day >= %s AND day <= %s GROUP BY day", (app_id, first_day, last_day))
        return {str(day): (int(b), int(d), int(p)) for day, b, d, p in rows}

    def prune_minutes(self, before: int) -> int:
        return int(self._run(lambda conn: conn.execute("DELETE FROM stats_minutes WHERE minute < %s",
                                                       (before,)).rowcount, retry=False))
