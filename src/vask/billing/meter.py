"""The meter: counts every broadcast once, checks quotas in memory, writes usage to the ledger.

What counts as one broadcast: one event published to one channel, by the HTTP API (a trigger to 3 channels
is 3, a batch of 10 is 10, a sendToUser is 1) or as a client event (1). The meter hears of each through
``Observer.broadcast``, which the hub calls once per event per channel. Nothing else calls it, so deliveries
to subscribers, presence member_added/removed, subscription acknowledgements, cache replays, pings,
webhooks and API reads are never counted. Delivered copies are counted apart (``deliveries``, including the
copies other nodes delivered, via ``Observer.delivered``) for the per-message comparison only.

The hot path does no I/O: ``broadcast`` adds to in-memory deltas and to the UsageCounters, and the checks
(``refuse_broadcasts``, ``connection_refusal``) compare the counters with the account's plan, which is held
in memory and refreshed from the store in the background. A background task writes the deltas to the
BillingStore every ``flush_interval`` seconds (1 by default) and once more on graceful shutdown.

Quota rule: a request is accepted whole or refused whole. It is refused when ``used + its broadcasts >
quota``, so with 2 broadcasts left a trigger to 3 channels is refused and a trigger to 2 is accepted. Only
plans without an overage price have a hard quota; paid plans keep publishing and the extra is billed.
Overshoot: none on one process; across processes see ``vask.billing.counters``.

Durability: the ledger is written with additive upserts. A crash (kill -9) loses what was counted since the
last successful write: at most one flush interval of usage, plus a write that was in progress. A write that
fails is written again, as the same batch with the same id, before anything newer: when the store did commit
it and only the answer was lost (the database killed during COMMIT), the store sees the id and adds nothing,
so an outage neither loses nor doubles a broadcast. Until that batch is written, new usage waits in memory.

Months are calendar months in UTC, taken from the injected wall clock: a publish at 23:59:59.9 on the last
day counts in that month, one at 00:00:00 in the next. Connections open across the boundary count toward the
new month's peak.

Warnings: when an account reaches 80% and 100% of its monthly broadcasts or of its connection limit, the
meter logs a warning once per level, kind and month, and counts it in ``warnings_total`` (for metrics).
Usage reports derive the same flags from the ledger for the dashboard (``vask.billing.statement``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vask import tasks
from vask.apps.base import App
from vask.billing.base import AccountMonth, AppUsage, BillingStore, UsageBatch
from vask.billing.counters import LocalUsageCounters, UsageCounters
from vask.billing.plans import Account, Plan, account_of, month_of, month_start, next_month, warning_level
from vask.core.observer import Observer

log = logging.getLogger("vask.billing")

ConnectionKey = tuple[str, str]  # (account, app id) a connection was counted under


@dataclass(slots=True)
class _Written:
    """What a flush brings back from the store thread."""

    recorded: int = 0  # how many of the batches handed over were recorded (or found already recorded)
    failed: bool = False
    totals: dict[str, int] | None = None
    plans: list[Plan] | None = None
    accounts: list[Account] | None = None
    months: list[AccountMonth] | None = None


class Meter(Observer):
    def __init__(self, store: BillingStore, *, counters: UsageCounters | None = None,
                 clock: Callable[[], float] = time.time, flush_interval: float = 1.0,
                 refresh_interval: float = 5.0) -> None:
        self.store = store
        self.counters: UsageCounters = counters or LocalUsageCounters()
        self.clock = clock  # wall-clock seconds: months are calendar months
        self.flush_interval = flush_interval
        self.refresh_interval = refresh_interval
        self.month = month_of(clock())
        self._month_end = month_start(next_month(self.month))
        self._plans: dict[str, Plan] = {}  # account id → its plan (unknown accounts are not limited)
        self._pending: dict[tuple[str, str, str], AppUsage] = {}  # (month, account, app) → unwritten delta
        self._peaks: dict[tuple[str, str], int] = {}  # (month, account) → peak concurrent connections
        self._dirty: set[tuple[str, str]] = set()  # (month, account) whose peak is not written yet
        self._local: dict[ConnectionKey, int] = {}  # this process's open connections
        self._warned: dict[tuple[str, str, str], int] = {}  # (month, account, kind) → level logged
        self._next_refresh = 0.0
        self._task: asyncio.Task[None] | None = None
        self._flushing: asyncio.Lock | None = None
        self._unwritten: UsageBatch | None = None  # a batch whose write failed: it goes first next time
        # Counters for metrics; they only grow.
        self.broadcasts_total = 0
        self.deliveries_total = 0
        self.refused_requests = 0
        self.refused_broadcasts = 0
        self.refused_connections = 0
        self.warnings_total = 0
        self.flushes = 0
        self.failed_flushes = 0

    # -- Observer hooks (hot path) -------------------------------------------------------------

    def broadcast(self, app: App, channel: str, deliveries: int) -> None:
        self._tick()
        account = account_of(app.account_id)
        row = self._row(account, app.id)
        row.broadcasts += 1
        row.deliveries += deliveries
        self.counters.add_broadcasts(self.month, account, 1)
        self.broadcasts_total += 1
        self.deliveries_total += deliveries

    def delivered(self, app: App, channel: str, deliveries: int) -> None:
        self._tick()
        self._row(account_of(app.account_id), app.id).deliveries += deliveries
        self.deliveries_total += deliveries

    def refuse_broadcasts(self, app: App, count: int) -> str | None:
        """Why ``count`` broadcasts for ``app`` must be refused (its account is at its hard quota), or None."""
        account = account_of(app.account_id)
        plan = self._plans.get(account)
        quota = plan.hard_quota if plan is not None else None
        if quota is None or plan is None:
            return None
        self._tick()
        used = self.counters.broadcasts(self.month, account)
        if used + count <= quota:
            return None
        self.refused_requests += 1
        self.refused_broadcasts += count
        return (f"Over message quota: account {account} has used {used:,} of the {quota:,} broadcasts a month "
                f"of plan {plan.name} in {self.month}; this request needs {count}")

    # -- connections ---------------------------------------------------------------------------

    def connection_refusal(self, app: App) -> str | None:
        """Why a new connection to ``app`` must be refused (its account is at its connection limit), or None."""
        account = account_of(app.account_id)
        plan = self._plans.get(account)
        limit = plan.max_connections if plan is not None else None
        if limit is None or plan is None or self.counters.connections(account) < limit:
            return None
        self.refused_connections += 1
        # At most 123 bytes: this is also the WebSocket close reason.
        return f"Application is over connection quota: {limit:,} concurrent connections on plan {plan.name}"

    def connection_opened(self, app: App) -> ConnectionKey:
        """Count an accepted connection; pass the returned key to ``connection_closed`` exactly once."""
        self._tick()
        key = (account_of(app.account_id), app.id)
        total, app_total = self.counters.connection_opened(*key)
        self._local[key] = self._local.get(key, 0) + 1
        self._note_peak(key, total, app_total)
        return key

    def connection_closed(self, key: ConnectionKey) -> None:
        self.counters.connection_closed(*key)
        left = self._local.get(key, 0) - 1
        if left > 0:
            self._local[key] = left
        else:
            self._local.pop(key, None)

    def _note_peak(self, key: ConnectionKey, total: int, app_total: int) -> None:
        month_account = (self.month, key[0])
        if total > self._peaks.get(month_account, 0):
            self._peaks[month_account] = total
            self._dirty.add(month_account)
        row = self._row(*key)
        row.peak_connections = max(row.peak_connections, app_total)

    # -- months --------------------------------------------------------------------------------

    def _row(self, account: str, app_id: str) -> AppUsage:
        key = (self.month, account, app_id)
        row = self._pending.get(key)
        if row is None:
            row = self._pending[key] = AppUsage(account, app_id, self.month)
        return row

    def _tick(self) -> None:
        now = self.clock()
        if now >= self._month_end:
            self._roll(now)

    def _roll(self, now: float) -> None:
        self.month = month_of(now)
        self._month_end = month_start(next_month(self.month))
        log.info("usage month is now %s", self.month)
        # Connections open at the boundary are the new month's starting peak.
        for (account, app_id), count in list(self._local.items()):
            self._note_peak((account, app_id), self.counters.connections(account), count)
        self._warned = {key: level for key, level in self._warned.items() if key[0] == self.month}

    def plan_of(self, account: str) -> Plan | None:
        return self._plans.get(account)

    # -- the ledger ----------------------------------------------------------------------------

    def _take_batch(self) -> UsageBatch:
        apps = list(self._pending.values())
        self._pending = {}
        keys = self._dirty | {(row.month, row.account_id) for row in apps}
        self._dirty = set()
        months = [AccountMonth(account, month, self._peaks.get((month, account), 0), self._plans.get(account))
                  for month, account in sorted(keys)]
        # Earlier months are done once written; the current month's peaks stay for comparison.
        self._peaks = {key: peak for key, peak in self._peaks.items() if key[0] == self.month}
        return UsageBatch(apps, months)

    def _batches(self) -> list[UsageBatch]:
        """What to write now: a batch that failed goes first, as it was (its id lets the store see a repeat)."""
        self.counters.begin_sync()
        return [self._unwritten, self._take_batch()] if self._unwritten is not None else [self._take_batch()]

    def _restore(self, batch: UsageBatch) -> None:
        """Put a batch that was never sent back in front of what was counted since."""
        for old in batch.apps:
            key = (old.month, old.account_id, old.app_id)
            row = self._pending.setdefault(key, AppUsage(old.account_id, old.app_id, old.month))
            row.broadcasts += old.broadcasts
            row.deliveries += old.deliveries
            row.peak_connections = max(row.peak_connections, old.peak_connections)
        for month in batch.accounts:
            peak_key = (month.month, month.account_id)
            self._peaks[peak_key] = max(self._peaks.get(peak_key, 0), month.peak_connections)
            self._dirty.add(peak_key)

    def _write(self, batches: list[UsageBatch], month: str, refresh: bool) -> _Written:
        """Blocking: runs in a worker thread (or directly in tests). Stops at the first failure."""
        written = _Written()
        try:
            for batch in batches:
                self.store.record(batch)  # False (already recorded) is as good as written
                written.recorded += 1
            written.totals = self.store.month_totals(month)
            if refresh:
                written.plans = self.store.list_plans()
                written.accounts = self.store.list_accounts()
        except Exception:
            log.exception("could not write usage or read it back; what was not written is kept for the next flush")
            written.failed = True
        return written

    def _apply_accounts(self, plans: Iterable[Plan], accounts: Iterable[Account]) -> None:
        by_name = {plan.name: plan for plan in plans}
        self._plans = {a.id: by_name[a.plan] for a in accounts if a.plan in by_name}

    def _finish(self, batches: list[UsageBatch], month: str, written: _Written) -> None:
        # Totals are None when the write or the read after it failed: the counters keep counting this
        # process's increments until a later read brings them into the ledger totals.
        self.counters.end_sync(month, written.totals)
        if written.recorded < len(batches):
            # The one that failed may have been committed with its answer lost: it is sent again as it is.
            # Those after it were never sent, so they join what is pending.
            self._unwritten = batches[written.recorded]
            for later in batches[written.recorded + 1:]:
                self._restore(later)
        else:
            self._unwritten = None
        if written.failed:
            self.failed_flushes += 1
            return
        self.flushes += 1
        if written.plans is not None and written.accounts is not None:
            self._apply_accounts(written.plans, written.accounts)
            self._next_refresh = time.monotonic() + self.refresh_interval
        self._check_warnings({m.account_id for b in batches for m in b.accounts if m.month == self.month})

    def _read_state(self) -> _Written:
        return _Written(totals=self.store.month_totals(self.month), plans=self.store.list_plans(),
                        accounts=self.store.list_accounts(), months=self.store.account_months(self.month))

    def load(self) -> None:
        """Read plans, accounts and this month's usage; blocking, called once before serving."""
        self._loaded(self._read_state())

    def _loaded(self, written: _Written) -> None:
        assert written.totals is not None and written.plans is not None and written.accounts is not None
        self._apply_accounts(written.plans, written.accounts)
        self._next_refresh = time.monotonic() + self.refresh_interval
        self.counters.end_sync(self.month, written.totals)
        for stored in written.months or []:
            key = (self.month, stored.account_id)
            self._peaks[key] = max(self._peaks.get(key, 0), stored.peak_connections)
        # Levels already reached were logged by the run that reached them.
        self._check_warnings(set(written.totals) | {m.account_id for m in written.months or []}, quiet=True)

    def flush_now(self) -> None:
        """Write pending usage synchronously (tests, and callers without an event loop)."""
        self._tick()
        month = self.month
        batches = self._batches()
        self._finish(batches, month, self._write(batches, month, time.monotonic() >= self._next_refresh))

    async def flush(self) -> None:
        if self._flushing is None:
            self._flushing = asyncio.Lock()
        async with self._flushing:  # the periodic task and stop() must not interleave their batches
            self._tick()
            month = self.month
            batches = self._batches()
            refresh = time.monotonic() >= self._next_refresh
            self._finish(batches, month, await asyncio.to_thread(self._write, batches, month, refresh))

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the store's state, then flush every ``flush_interval`` seconds until ``stop``."""
        self._loaded(await asyncio.to_thread(self._read_state))
        self._task = tasks.spawn(self._run(), "usage-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                # Shielded: stop() cancels this task, and a write already handed to a thread must still be
                # accounted for (kept on failure) before the final flush takes the next batch.
                await asyncio.shield(self.flush())
            except Exception:  # a bug here must not stop metering for the rest of the run
                log.exception("usage flush failed")

    async def stop(self) -> None:
        """Stop the periodic task and write what is left (graceful shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    # -- warnings and metrics ------------------------------------------------------------------

    def _check_warnings(self, accounts: Iterable[str], *, quiet: bool = False) -> None:
        for account in accounts:
            plan = self._plans.get(account)
            if plan is None:
                continue
            used = self.counters.broadcasts(self.month, account)
            peak = self._peaks.get((self.month, account), 0)
            for kind, value, limit in (("broadcasts", used, plan.included_broadcasts),
                                       ("connections", peak, plan.max_connections)):
                level = warning_level(value, limit)
                key = (self.month, account, kind)
                if level is None or level <= self._warned.get(key, 0):
                    continue
                self._warned[key] = level
                if quiet:
                    continue
                self.warnings_total += 1
                log.warning("account %s has reached %d%% of its %s for %s: %s of %s (plan %s)", account, level,
                            "monthly broadcasts" if kind == "broadcasts" else "concurrent connections",
                            self.month, f"{value:,}", f"{limit:,}", plan.name)

    def warnings(self, account: str) -> dict[str, int]:
        """Warning levels reached this month by ``account``: {"broadcasts": 80, ...}."""
        return {kind: level for (month, acct, kind), level in self._warned.items()
                if month == self.month and acct == account}

    def stats(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "broadcasts_total": self.broadcasts_total,
            "deliveries_total": self.deliveries_total,
            "refused_requests": self.refused_requests,
            "refused_broadcasts": self.refused_broadcasts,
            "refused_connections": self.refused_connections,
            "warnings_total": self.warnings_total,
            "flushes": self.flushes,
            "failed_flushes": self.failed_flushes,
            "unflushed_broadcasts": sum(row.broadcasts for row in self._pending.values())
            + (sum(row.broadcasts for row in self._unwritten.apps) if self._unwritten is not None else 0),
            "open_connections": sum(self._local.values()),
        }
