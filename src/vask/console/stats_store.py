"""The StatsStore interface: per-minute and per-day counts of each app, one row per node, in the app database.

Each node writes only its own rows, additively (broadcasts and deliveries are added, the peak keeps the
larger value), so nodes flush without coordination and a row survives restarts. Reads sum broadcasts and
deliveries over the nodes; the peak is the largest any node saw (each node records the cluster-wide count
it knew: see ``vask.console.stats``). Minute rows are kept for ``stats_minute_retention`` hours (charts of
the last hour), day rows for good (charts of a month).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from vask.apps.base import AppStoreError

if TYPE_CHECKING:
    from vask.config import Settings


@dataclass(slots=True)
class StatsRow:
    """One node's counts for one app in one minute (a delta to add to the stored row)."""

    app_id: str
    minute: int  # unix seconds of the minute's start (UTC)
    node: str
    broadcasts: int = 0
    deliveries: int = 0
    peak_connections: int = 0


Counts = tuple[int, int, int]  # (broadcasts, deliveries, peak connections), summed over nodes


class StatsStoreError(AppStoreError):
    """The stats tables cannot be opened or reached."""


class StatsStore(Protocol):
    """Blocking calls: the server runs them in a worker thread."""

    def record(self, rows: list[StatsRow]) -> None:
        """Add the rows to their minute and to their day (UTC), in one transaction."""

    def minute_counts(self, app_id: str, since: int, until: int) -> dict[int, Counts]:
        """Minute start → counts, for minutes in [since, until)."""

    def day_counts(self, app_id: str, first_day: str, last_day: str) -> dict[str, Counts]:
        """'YYYY-MM-DD' → counts, for days in [first_day, last_day]."""

    def prune_minutes(self, before: int) -> int:
        """Delete minute rows older than ``before``; how many went."""

    def close(self) -> None: ...


def day_of(minute: int) -> str:
    return datetime.fromtimestamp(minute, UTC).strftime("%Y-%m-%d")


def _add(row: list[int], b: int, d: int, peak: int) -> None:
    row[0] += b
    row[1] += d
    row[2] = max(row[2], peak)


class MemoryStatsStore:
    """For the memory:// store and tests; nothing survives the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minutes: dict[tuple[str, int, str], list[int]] = {}
        self._days: dict[tuple[str, str, str], list[int]] = {}

    def record(self, rows: list[StatsRow]) -> None:
        with self._lock:
            for r in rows:
                _add(self._minutes.setdefault((r.app_id, r.minute, r.node), [0, 0, 0]), r.broadcasts,
                     r.deliveries, r.peak_connections)
                _add(self._days.setdefault((r.app_id, day_of(r.minute), r.node), [0, 0, 0]), r.broadcasts,
                     r.deliveries, r.peak_connections)

    def minute_counts(self, app_id: str, since: int, until: int) -> dict[int, Counts]:
        out: dict[int, list[int]] = {}
        with self._lock:
            for (app, minute, _node), (b, d, peak) in self._minutes.items():
                if app == app_id and since <= minute < until:
                    _add(out.setdefault(minute, [0, 0, 0]), b, d, peak)
        return {k: (v[0], v[1], v[2]) for k, v in out.items()}

    def day_counts(self, app_id: str, first_day: str, last_day: str) -> dict[str, Counts]:
        out: dict[str, list[int]] = {}
        with self._lock:
            for (app, day, _node), (b, d, peak) in self._days.items():
                if app == app_id and first_day <= day <= last_day:
                    _add(out.setdefault(day, [0, 0, 0]), b, d, peak)
        return {k: (v[0], v[1], v[2]) for k, v in out.items()}

    def prune_minutes(self, before: int) -> int:
        with self._lock:
            old = [key for key in self._minutes if key[1] < before]
            for key in old:
                del self._minutes[key]
        return len(old)

    def close(self) -> None:
        pass


def open_stats_store(settings: Settings) -> StatsStore:
    """The stats tables in the app store's database (SQLite file, PostgreSQL, or memory)."""
    kind = settings.store_kind
    if kind == "memory":
        return MemoryStatsStore()
    if kind == "postgresql":
        assert settings.database_url is not None
        try:
            from vask.console.stats_postgres import PostgresStatsStore
        except ImportError as exc:
            raise StatsStoreError(str(exc)) from exc
        return PostgresStatsStore(settings.database_url)
    from vask.console.stats_sqlite import SqliteStatsStore

    path = settings.sqlite_path
    assert path is not None
    return SqliteStatsStore(path)
