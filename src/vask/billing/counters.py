"""The counters quota checks read: this month's broadcasts and the concurrent connections of each account.

``UsageCounters`` is the seam for scale-out. The in-process ``LocalUsageCounters`` below knows this
process's increments at once and every other process's (other nodes, other ``--workers``) from the usage
ledger, which the meter writes and reads back once per flush interval. A cluster implementation (shared
atomic counters with local batching, e.g. Redis INCRBY) replaces it behind the same interface; it may treat
``begin_sync``/``end_sync`` as no-ops, or use them as its own batching points.

Overshoot past a hard quota, with LocalUsageCounters:
- one process: none. A publish is refused when ``used + its broadcasts > quota``, and ``used`` includes
  every earlier publish of the process, so exactly ``quota`` broadcasts are accepted.
- N processes sharing one database: a process learns of the others' broadcasts once they have flushed and it
  has read the totals back, i.e. within two flush intervals (2 s by default). The overshoot is therefore at
  most what the *other* N - 1 processes accept for the account in two flush intervals ("within two flush
  intervals' worth of publishes per other node").
- Connections are counted per process here: each process enforces an account's connection limit on its own
  connections only (up to N times the limit across N processes) until a cluster implementation is plugged in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, TypeVar


class UsageCounters(Protocol):
    """Current usage for quota checks. Called on the event loop for every publish: must not block or do I/O."""

    def add_broadcasts(self, month: str, account: str, count: int) -> None:
        """``count`` broadcasts were accepted for ``account`` in ``month``."""

    def broadcasts(self, month: str, account: str) -> int:
        """The account's broadcasts in ``month`` as far as known: every node's, give or take the bound above."""

    def connection_opened(self, account: str, app_id: str) -> tuple[int, int]:
        """A connection was accepted; return the concurrent connections of (the account, the app) with it."""

    def connection_closed(self, account: str, app_id: str) -> None: ...

    def connections(self, account: str) -> int:
        """The account's concurrent connections, all of its apps together."""

    def begin_sync(self) -> None:
        """The meter is about to write everything counted so far to the ledger."""

    def end_sync(self, month: str, totals: Mapping[str, int] | None) -> None:
        """The write finished: ``totals`` are the ledger's broadcasts per account for ``month`` read right
        after it (every process's flushed usage), or None when the write failed and will be retried."""


K = TypeVar("K")


def _decrement(table: dict[K, int], key: K) -> None:
    left = table.get(key, 0) - 1
    if left > 0:
        table[key] = left
    else:
        table.pop(key, None)  # idle accounts cost no memory


def _merge(into: dict[tuple[str, str], int], other: Mapping[tuple[str, str], int]) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0) + value


class LocalUsageCounters:
    """In-process counters: the ledger totals of the last sync plus this process's increments since."""

    def __init__(self) -> None:
        self._ledger: dict[str, int] = {}  # broadcasts per account in _ledger_month, as last read
        self._ledger_month = ""
        self._unsynced: dict[tuple[str, str], int] = {}  # (month, account): counted since the write began
        self._inflight: dict[tuple[str, str], int] = {}  # (month, account): being written now
        self._accounts: dict[str, int] = {}
        self._apps: dict[tuple[str, str], int] = {}

    def add_broadcasts(self, month: str, account: str, count: int) -> None:
        key = (month, account)
        self._unsynced[key] = self._unsynced.get(key, 0) + count

    def broadcasts(self, month: str, account: str) -> int:
        key = (month, account)
        stored = self._ledger.get(account, 0) if month == self._ledger_month else 0
        return stored + self._unsynced.get(key, 0) + self._inflight.get(key, 0)

    def connection_opened(self, account: str, app_id: str) -> tuple[int, int]:
        total = self._accounts[account] = self._accounts.get(account, 0) + 1
        app = self._apps[(account, app_id)] = self._apps.get((account, app_id), 0) + 1
        return total, app

    def connection_closed(self, account: str, app_id: str) -> None:
        _decrement(self._accounts, account)
        _decrement(self._apps, (account, app_id))

    def connections(self, account: str) -> int:
        return self._accounts.get(account, 0)

    def begin_sync(self) -> None:
        _merge(self._inflight, self._unsynced)
        self._unsynced = {}

    def end_sync(self, month: str, totals: Mapping[str, int] | None) -> None:
        if totals is None:
            _merge(self._unsynced, self._inflight)  # not stored: keep counting it until a write succeeds
        else:
            # The totals include what was in flight (written just before they were read), and this process's
            # later increments are still in _unsynced: nothing is counted twice.
            self._ledger = dict(totals)
            self._ledger_month = month
        self._inflight = {}
