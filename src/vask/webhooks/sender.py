"""Delivery of webhook requests: per-target bounded queues, signed POSTs, retries, counters, shutdown flush.

``submit`` is called on the event loop by the hub's observer hooks and only appends to a deque: it never
waits, never does I/O, and when a target's queue is full the event is dropped, logged and counted. Tasks
drain the queues, one per busy lane (see ``batching``), and POST with aiohttp: a timeout per request, no
redirects, at most ``MAX_RESPONSE_BYTES`` of the answer read, the body signed per attempt with a fresh
``time_ms`` (pusher-http-python refuses bodies whose time_ms is over 5 minutes off) and the same
``X-Vask-Delivery`` id on every attempt, so a receiver can drop the duplicate a timed-out-but-processed
request causes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import aiohttp

from vask import __version__, tasks
from vask.apps.base import App, WebhookTarget
from vask.config import Settings
from vask.console.feed import ConsoleFeed
from vask.webhooks import events as ev
from vask.webhooks.batching import Lane, backoff, keep_retrying, lane_of
from vask.webhooks.deliveries import DeliveryLog
from vask.webhooks.ssrf import AddressRefused, GuardedResolver, UrlRefused, check_url, safe_url

log = logging.getLogger("vask.webhooks")

MAX_RESPONSE_BYTES = 4096  # of a receiver's answer; the rest is never read
LOG_EVERY = 10.0  # seconds between repeated warnings about one target's dropped or refused events
DELIVERY_HEADER = "X-Vask-Delivery"


@dataclass
class WebhookStats:
    """Counters for operators (the metrics endpoint exports them). Events, unless the name says requests."""

    events_queued: int = 0  # accepted into a target's queue
    events_delivered: int = 0  # in requests answered 2xx
    requests_delivered: int = 0
    attempts_failed: int = 0  # non-2xx answers, timeouts and network errors
    retries: int = 0
    requests_given_up: int = 0  # still failing after webhook_retry_for
    events_given_up: int = 0
    events_refused: int = 0  # the URL is refused (webhook_allow_private, webhook_require_https)
    events_overflowed: int = 0  # dropped because the target's queue was full
    events_lost_at_shutdown: int = 0  # not delivered within webhook_shutdown_grace
    pairs_cancelled: int = 0  # a vacate or removal cancelled by a re-join within the delay: neither sent
    cache_miss_deduplicated: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Target:
    """The queue of one webhook target of one app."""

    app: App  # the latest app seen, so a rotated secret signs the next attempt
    target: WebhookTarget
    lanes: list[Lane]
    waiting: int = 0  # events in the lanes not yet taken for a request

    @property
    def url(self) -> str:
        return safe_url(self.target.url)


class WebhookSender:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.wall = wall  # time_ms is wall-clock milliseconds
        self.stats = WebhookStats()
        self.targets: dict[tuple[str, str], Target] = {}
        self.session: aiohttp.ClientSession | None = None
        self.stopping = False
        self.stopped = False
        self._stop_event = asyncio.Event()
        # (app id, url, kind) → (last logged, not logged since): outlives a target's idle queue
        self._logged: dict[tuple[str, str, str], tuple[float, int]] = {}
        self.deliveries = DeliveryLog()  # the dashboard's recent-deliveries log
        self.console = ConsoleFeed()  # the server sets the hub's: deliveries show in the app's console

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.settings.webhook_allow_private),
                                         limit=200, ttl_dns_cache=10)
        # trust_env=False: a proxy from the environment would connect to addresses the resolver never saw.
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout),
            trust_env=False, auto_decompress=False, headers={"User-Agent": f"Vask-Webhooks/{__version__}"})
        for target in self.targets.values():  # events submitted before the loop ran
            for lane in target.lanes:
                self._kick(target, lane)

    # -- queueing (on the event loop, never blocks) -----------------------------------------------

    def submit(self, app: App, event: ev.Event) -> None:
        """Queue ``event`` for every target of ``app`` that wants it."""
        channel = event["channel"]
        for target in app.settings.webhooks:
            if ev.accepts(target, event["name"], channel):
                self._enqueue(app, target, event, channel)

    def _enqueue(self, app: App, target: WebhookTarget, event: ev.Event, channel: str) -> None:
        key = (app.id, target.url)
        state = self.targets.get(key)
        if state is None:
            lanes = [Lane() for _ in range(self.settings.webhook_concurrency)]
            state = self.targets[key] = Target(app, target, lanes)
        else:
            state.app, state.target = app, target  # settings changed: the newest apply from now on
        if self.stopped:
            self.stats.events_lost_at_shutdown += 1
            self._warn(state, "late", "webhook for app %s to %s dropped: the webhook sender has stopped",
                       app.id, state.url)
            return
        if state.waiting >= self.settings.webhook_queue_size:
            self.stats.events_overflowed += 1
            self._warn(state, "overflow", "webhook queue of app %s to %s is full (%d events): dropping %s "
                       "events (raise webhook_queue_size, or check the receiver)", app.id, state.url,
                       state.waiting, event["name"])
            return
        # A batching target uses one lane, so that events close in time share a request whatever their channel.
        lane = state.lanes[0 if target.batch else lane_of(channel, len(state.lanes))]
        lane.push(event, self.clock())
        state.waiting += 1
        self.stats.events_queued += 1
        self._kick(state, lane)

    def _kick(self, state: Target, lane: Lane) -> None:
        if self.session is None or not lane.waiting:
            return
        if lane.task is None:
            lane.wake = asyncio.Event()
            lane.task = tasks.spawn(self._drain(state, lane), "webhook-lane")
        elif self.stopping or len(lane) >= self.settings.webhook_batch_max:
            lane.wake.set()  # a full batch (or a shutdown) need not wait for the window

    # -- draining ---------------------------------------------------------------------------------

    async def _drain(self, state: Target, lane: Lane) -> None:
        limit = self.settings.webhook_batch_max
        try:
            while True:
                batch = state.target.batch
                window = state.target.batch_window or self.settings.webhook_batch_window
                ready_at = lane.ready_at(batch, window, limit)
                if ready_at is None:
                    return
                pause = ready_at - self.clock()
                if pause > 0 and not self.stopping:
                    lane.wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lane.wake.wait(), pause)
                    continue
                taken, first_at = lane.take(batch, limit)
                state.waiting -= len(taken)
                lane.in_flight = len(taken)
                await self._deliver(state, taken, first_at)
                lane.in_flight = 0
        finally:
            lane.task = None
            if not any(lane.task or lane.waiting for lane in state.lanes):
                self.targets.pop((state.app.id, state.target.url), None)

    async def _deliver(self, state: Target, taken: list[ev.Event], first_at: float) -> None:
        """Send one request until it is answered 2xx, refused, or out of retry time."""
        delivery = secrets.token_hex(16)
        attempt = 0
        while True:
            attempt += 1
            try:
                status = await self._post(state, taken, delivery, attempt)
            except (AddressRefused, UrlRefused) as exc:
                self._refused(state, taken, exc)
                self._show(state, taken, attempt, False, error=str(exc), retrying=False)
                return
            except aiohttp.ClientConnectorDNSError as exc:
                if isinstance(exc.__cause__, AddressRefused):
                    self._refused(state, taken, exc.__cause__)
                    self._show(state, taken, attempt, False, error=str(exc.__cause__), retrying=False)
                    return
                reason = f"cannot resolve the host: {exc.os_error}"
            except TimeoutError:
                reason = f"no answer within {self.settings.webhook_timeout:g} s"
            except Exception as exc:  # network errors, bad answers: all retried
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= status < 300:
                    self.stats.requests_delivered += 1
                    self.stats.events_delivered += len(taken)
                    self._show(state, taken, attempt, True, status=status)
                    return
                reason = f"HTTP {status}"
            self.stats.attempts_failed += 1
            pause = backoff(attempt, self.settings.webhook_retry_base, self.settings.webhook_retry_max_delay)
            if self.stopping:
                pause = min(pause, 0.2)  # the shutdown grace is short: try again soon, until it ends
            retrying = keep_retrying(first_at, self.clock(), pause, self.settings.webhook_retry_for)
            self._show(state, taken, attempt, False, error=reason, retrying=retrying)
            if not retrying:
                self.stats.requests_given_up += 1
                self.stats.events_given_up += len(taken)
                log.error("webhook %s for app %s to %s given up after %d attempts (last: %s); %d events lost: %s",
                          delivery, state.app.id, state.url, attempt, reason, len(taken), _names(taken))
                return
            self.stats.retries += 1
            log.warning("webhook %s for app %s to %s failed (attempt %d: %s); retrying in %.2f s",
                        delivery, state.app.id, state.url, attempt, reason, pause)
            if self.stopping:
                await asyncio.sleep(pause)
            else:
                with contextlib.suppress(TimeoutError):  # a shutdown cuts a long pause short
                    await asyncio.wait_for(self._stop_event.wait(), pause)

    async def _post(self, state: Target, taken: list[ev.Event], delivery: str, attempt: int) -> int:
        url = state.target.url
        check_url(url, allow_private=self.settings.webhook_allow_private,
                  require_https=self.settings.webhook_require_https)
        assert self.session is not None
        time_ms = int(self.wall() * 1000)  # at each attempt, so receivers' 5-minute window check passes
        payload = ev.body(taken, time_ms)
        app = state.app
        headers = {**state.target.headers,
                   "Content-Type": "application/json",
                   "X-Pusher-Key": app.key,
                   "X-Pusher-Signature": ev.signature(app.secret, payload),
                   DELIVERY_HEADER: delivery,
                   "X-Vask-Attempt": str(attempt),
                   "X-Vask-Timestamp": str(time_ms)}
        async with self.session.post(url, data=payload, headers=headers, allow_redirects=False) as response:
            status = response.status
            # The status decides. A little of the body is read so a short answer leaves the connection
            # reusable; an unread rest makes aiohttp close it instead, and a slow body is not a failure.
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                await response.content.read(MAX_RESPONSE_BYTES)
            return status

    def _show(self, state: Target, taken: list[ev.Event], attempt: int, ok: bool, **details: Any) -> None:
        """A delivery attempt in the app's debug console (webhook_ok / webhook_failed)."""
        app_id = state.app.id
        self.deliveries.add(app_id, state.url, [str(e.get("name")) for e in taken], ok, attempt,
                            status=details.get("status"), error=details.get("error"),
                            retrying=bool(details.get("retrying")))
        if self.console.watching(app_id):
            channels = sorted({str(e.get("channel")) for e in taken if e.get("channel") is not None})
            self.console.note(app_id, "webhook_ok" if ok else "webhook_failed",
                              channels[0] if len(channels) == 1 else None, None, url=state.url,
                              events=[str(e.get("name")) for e in taken][:20], attempts=attempt, **details)

    def _refused(self, state: Target, taken: list[ev.Event], exc: Exception) -> None:
        self.stats.events_refused += len(taken)
        self._warn(state, "refused", "webhook for app %s to %s refused, %d events dropped: %s",
                   state.app.id, state.url, len(taken), exc)

    def _warn(self, state: Target, kind: str, message: str, *args: Any) -> None:
        """Log the first occurrence, then at most every LOG_EVERY seconds with how many were not logged."""
        now = self.clock()
        key = (state.app.id, state.target.url, kind)
        last, unlogged = self._logged.get(key, (-LOG_EVERY, 0))
        if now - last < LOG_EVERY:
            self._logged[key] = (last, unlogged + 1)
            return
        if len(self._logged) > 10_000:  # bounded; at worst a warning is repeated early
            self._logged.clear()
        self._logged[key] = (now, 0)
        if unlogged:
            message += f" (and {unlogged} more since the last warning)"
        log.warning(message, *args)

    # -- shutdown ---------------------------------------------------------------------------------

    def pending(self) -> int:
        """Events not yet delivered: waiting, or in a request being sent or retried."""
        return sum(len(lane) + lane.in_flight for t in self.targets.values() for lane in t.lanes)

    async def stop(self, grace: float) -> None:
        """Send what is queued (batches without waiting for their window) for up to ``grace`` seconds."""
        self.stopping = True
        self._stop_event.set()
        for state in list(self.targets.values()):
            for lane in state.lanes:
                self._kick(state, lane)
        deadline = self.clock() + grace
        while self.pending() and self.clock() < deadline:
            await asyncio.sleep(0.02)
        lost = self.pending()
        tasks = [lane.task for t in self.targets.values() for lane in t.lanes if lane.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.stopped = True
        if lost:
            self.stats.events_lost_at_shutdown += lost
            log.error("shutdown: %d webhook events were not delivered within %.1f s", lost, grace)
        if self.session is not None:
            await self.session.close()
            self.session = None


def _names(taken: list[ev.Event]) -> str:
    shown = ", ".join(f"{e['name']} {e['channel']}" for e in taken[:5])
    return shown + (f" and {len(taken) - 5} more" if len(taken) > 5 else "")
