"""The webhook observer: hub transitions → payloads → cache_miss de-duplication → delay → per-target queues.

Registered with ``hub.observer.add(service)``. Every hook runs on the event loop and only appends to
in-memory structures (the HTTP work happens in the sender's tasks), so webhooks never slow a broadcast.

Cluster mode: the cluster hub calls channel_occupied/vacated and member_added/removed once per
cluster-wide transition, on one node, so each transition gives one webhook. client_event is called on the
sender's node only. cache_miss can be seen by several nodes: it is de-duplicated per node within
``webhook_cache_miss_window``, so a cluster may send one per node that saw the miss. The delay that
cancels a vacate on re-occupation works within one node (see the report of issue 3 for the cluster case).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from vask.apps.base import App
from vask.config import Settings
from vask.core.observer import Observer
from vask.webhooks import events as ev
from vask.webhooks.debounce import Debouncer, Deduper
from vask.webhooks.sender import WebhookSender

log = logging.getLogger("vask.webhooks")


class WebhookService(Observer):
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic,
                 sender: WebhookSender | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.sender = sender or WebhookSender(settings, clock)
        self.stats = self.sender.stats
        self.debouncer: Debouncer[App] = Debouncer(settings.webhook_vacate_delay, settings.webhook_queue_size)
        self.cache_misses = Deduper(settings.webhook_cache_miss_window)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._overflow_seen = 0

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.sender.start()
        self._schedule()

    async def stop(self, grace: float | None = None) -> None:
        """Release the delayed events at once (no re-join can cancel them any more) and flush everything."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for app, event in self.debouncer.drain():
            self.sender.submit(app, event)
        await self.sender.stop(self.settings.webhook_shutdown_grace if grace is None else grace)

    # -- observer hooks ---------------------------------------------------------------------------

    def channel_occupied(self, app: App, channel: str) -> None:
        self._submit(app, ev.channel_event(ev.OCCUPIED, channel))

    def channel_vacated(self, app: App, channel: str) -> None:
        self._submit(app, ev.channel_event(ev.VACATED, channel))

    def member_added(self, app: App, channel: str, user_id: str) -> None:
        self._submit(app, ev.member_event(ev.MEMBER_ADDED, channel, user_id))

    def member_removed(self, app: App, channel: str, user_id: str) -> None:
        self._submit(app, ev.member_event(ev.MEMBER_REMOVED, channel, user_id))

    def client_event(self, app: App, channel: str, event: str, data: Any, socket_id: str,
                     user_id: str | None) -> None:
        if app.settings.webhooks and ev.wanted(app.settings.webhooks, ev.CLIENT_EVENT, channel):
            self._submit(app, ev.client_event(channel, event, data, socket_id, user_id))

    def cache_miss(self, app: App, channel: str) -> None:
        if not app.settings.webhooks or not ev.wanted(app.settings.webhooks, ev.CACHE_MISS, channel):
            return
        if not self.cache_misses.first((app.id, channel), self.clock()):
            self.stats.cache_miss_deduplicated += 1
            return
        self._submit(app, ev.channel_event(ev.CACHE_MISS, channel))

    def subscription_count(self, app: App, channel: str, count: int) -> None:
        if app.settings.subscription_count_events:  # opt-in per app, as on Pusher
            self._submit(app, ev.subscription_count(channel, count))

    # -- plumbing ---------------------------------------------------------------------------------

    def _submit(self, app: App, event: ev.Event) -> None:
        targets = app.settings.webhooks
        channel = event["channel"]
        if not targets or not ev.wanted(targets, event["name"], channel):
            return
        released = self.debouncer.push((app.id, channel), event, app, self.clock())
        self.stats.pairs_cancelled = self.debouncer.cancelled
        if self.debouncer.overflow != self._overflow_seen:
            self._overflow_seen = self.debouncer.overflow
            self.stats.events_overflowed += 1
            log.warning("webhook delay queue is full (%d events): dropped %s of app %s on %s",
                        self.debouncer.size, event["name"], app.id, channel)
        for tag, item in released:
            self.sender.submit(tag, item)
        self._schedule()

    def _schedule(self) -> None:
        """Keep one timer, at the earliest time a delayed event is due."""
        due = self.debouncer.next_due()
        if self.loop is None or due is None or (self._timer_at is not None and self._timer_at <= due):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        # A millisecond late rather than early: uvloop's clock is coarse, and early would find nothing due.
        self._timer = self.loop.call_later(max(0.0, due - self.clock()) + 0.001, self._tick)

    def _tick(self) -> None:
        self._timer = self._timer_at = None
        try:
            for app, event in self.debouncer.pop_due(self.clock()):
                self.sender.submit(app, event)
        except Exception:  # a bug here must not stop the timer for every later webhook
            log.exception("releasing delayed webhooks failed")
        self._schedule()
