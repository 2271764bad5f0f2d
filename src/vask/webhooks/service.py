"""The webhook observer: hub transitions → payloads → cache_miss de-duplication → delay → per-target queues.

Registered with ``hub.observer.add(service)``. Every hook runs on the event loop and only appends to
in-memory structures (the HTTP work happens in the sender's tasks), so webhooks never slow a broadcast.

Cluster mode: the cluster hub calls channel_occupied/vacated and member_added/removed once per
cluster-wide transition, on one node, so each transition gives one webhook. client_event is called on the
sender's node only. cache_miss can be seen by several nodes: it is de-duplicated per node within
``webhook_cache_miss_window``, so a cluster may send one per node that saw the miss. The delay that
cancels a vacate on re-occupation only sees this node's transitions, while in a cluster the return may
happen on another node: there the cluster hub applies the delay in the shared store and the server runs
this service with ``webhook_vacate_delay`` 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from vask import tasks
from vask.apps.base import App
from vask.config import Settings
from vask.core.observer import Observer
from vask.webhooks import events as ev
from vask.webhooks.debounce import Debouncer, Deduper
from vask.webhooks.sender import WebhookSender

log = logging.getLogger("vask.webhooks")


class AppSource(Protocol):
    """The server's app cache (``vask.server.appcache.AppCache``)."""

    def cached_by_id(self, app_id: str) -> tuple[bool, App | None]: ...

    def by_id(self, app_id: str) -> Awaitable[App | None]: ...


class WebhookService(Observer):
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic,
                 sender: WebhookSender | None = None, apps: AppSource | None = None) -> None:
        self.settings = settings
        self.clock = clock
        # The hub hands over the app record a connection was opened with, which can be old; the app cache
        # has the record as the store had it at most app_cache_ttl ago, so webhook changes apply in time.
        self.apps = apps
        self._refreshing: dict[str, asyncio.Task[None]] = {}  # app id → its re-read (a reference keeps it)
        self._awaiting: dict[str, list[Callable[[App], None]]] = {}  # app id → hooks waiting for the re-read
        self.sender = sender or WebhookSender(settings, clock)
        self.stats = self.sender.stats
        self.debouncer: Debouncer[App] = Debouncer(settings.webhook_vacate_delay, settings.webhook_queue_size)
        self.cache_misses = Deduper(settings.webhook_cache_miss_window)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._overflow_seen = 0
        self._logged_at = -10.0
        self._unlogged = 0

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.sender.start()
        self._schedule()

    async def stop(self, grace: float | None = None) -> None:
        """Release the delayed events at once (no re-join can cancel them any more) and flush everything."""
        if self._refreshing:  # hooks waiting for an app record: let them finish first
            await asyncio.wait(list(self._refreshing.values()), timeout=2.0)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for app, event in self.debouncer.drain():
            self._release(app, event)
        await self.sender.stop(self.settings.webhook_shutdown_grace if grace is None else grace)

    # -- observer hooks ---------------------------------------------------------------------------

    def channel_occupied(self, app: App, channel: str) -> None:
        self._with_fresh(app, lambda a: self._enqueue(a, ev.channel_event(ev.OCCUPIED, channel)))

    def channel_vacated(self, app: App, channel: str) -> None:
        self._with_fresh(app, lambda a: self._enqueue(a, ev.channel_event(ev.VACATED, channel)))

    def member_added(self, app: App, channel: str, user_id: str) -> None:
        self._with_fresh(app, lambda a: self._enqueue(a, ev.member_event(ev.MEMBER_ADDED, channel, user_id)))

    def member_removed(self, app: App, channel: str, user_id: str) -> None:
        self._with_fresh(app, lambda a: self._enqueue(a, ev.member_event(ev.MEMBER_REMOVED, channel, user_id)))

    def client_event(self, app: App, channel: str, event: str, data: Any, socket_id: str,
                     user_id: str | None) -> None:
        def handle(fresh: App) -> None:
            if fresh.settings.webhooks and ev.wanted(fresh.settings.webhooks, ev.CLIENT_EVENT, channel):
                self._enqueue(fresh, ev.client_event(channel, event, data, socket_id, user_id))
        self._with_fresh(app, handle)

    def cache_miss(self, app: App, channel: str) -> None:
        def handle(fresh: App) -> None:
            if not fresh.settings.webhooks or not ev.wanted(fresh.settings.webhooks, ev.CACHE_MISS, channel):
                return
            if not self.cache_misses.first((fresh.id, channel), self.clock()):
                self.stats.cache_miss_deduplicated += 1
                return
            self._enqueue(fresh, ev.channel_event(ev.CACHE_MISS, channel))
        self._with_fresh(app, handle)

    def subscription_count(self, app: App, channel: str, count: int) -> None:
        def handle(fresh: App) -> None:
            if fresh.settings.subscription_count_events:  # opt-in per app, as on Pusher
                self._enqueue(fresh, ev.subscription_count(channel, count))
        self._with_fresh(app, handle)

    # -- the app's current record -----------------------------------------------------------------

    def _with_fresh(self, app: App, handle: Callable[[App], None]) -> None:
        """Call ``handle`` with the app's current record, now if the app cache has it, else once the cache
        has re-read it (a store query, off the loop); events of one app keep their order meanwhile."""
        if self.apps is None:
            handle(app)
            return
        waiting = self._awaiting.get(app.id)
        if waiting is not None:
            if len(waiting) < self.settings.webhook_queue_size:
                waiting.append(handle)
            else:
                self._dropped("events waiting for app %s's record: %d", app.id, len(waiting))
            return
        hit, cached = self.apps.cached_by_id(app.id)
        if hit:
            if cached is not None:  # None: the app was deleted
                handle(cached)
            return
        if self.loop is None:
            handle(app)
            return
        self._awaiting[app.id] = [handle]
        self._refreshing[app.id] = tasks.spawn(self._refresh(app), "webhook-app-refresh")

    async def _refresh(self, app: App) -> None:
        fresh: App | None = app
        try:
            assert self.apps is not None
            fresh = await self.apps.by_id(app.id)
        except Exception:  # the store is down: use the record the hub has
            log.warning("could not re-read app %s for its webhooks; using the record in memory", app.id,
                        exc_info=True)
        finally:
            self._refreshing.pop(app.id, None)
            handlers = self._awaiting.pop(app.id, [])
        if fresh is None:
            return
        for handle in handlers:
            try:
                handle(fresh)
            except Exception:
                log.exception("webhook hook failed for app %s", app.id)

    def _release(self, app: App, event: ev.Event) -> None:
        """A delayed event goes to the targets the app has now, as far as the app cache knows."""
        if self.apps is not None:
            hit, cached = self.apps.cached_by_id(app.id)
            if hit:
                if cached is None:
                    return
                app = cached
        self.sender.submit(app, event)

    def _enqueue(self, app: App, event: ev.Event) -> None:
        """Through the delay (or straight on) to the sender; ``app`` is the current record."""
        targets = app.settings.webhooks
        channel = event["channel"]
        if not targets or not ev.wanted(targets, event["name"], channel):
            return
        released = self.debouncer.push((app.id, channel), event, app, self.clock())
        self.stats.pairs_cancelled = self.debouncer.cancelled
        if self.debouncer.overflow != self._overflow_seen:
            self._overflow_seen = self.debouncer.overflow
            self._dropped("delayed events: %d (last dropped: %s of app %s on %s)", self.debouncer.size,
                          event["name"], app.id, channel)
        for tag, item in released:
            self.sender.submit(tag, item)
        self._schedule()

    def _dropped(self, what: str, *args: Any) -> None:
        """Count a dropped event; warn on the first and then at most every 10 s, with the count meanwhile."""
        self.stats.events_overflowed += 1
        self._unlogged += 1
        now = self.clock()
        if now - self._logged_at >= 10.0:
            log.warning(f"webhook queue full, %d events dropped since the last warning; {what}",
                        self._unlogged, *args)
            self._logged_at, self._unlogged = now, 0

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
                self._release(app, event)
        except Exception:  # a bug here must not stop the timer for every later webhook
            log.exception("releasing delayed webhooks failed")
        self._schedule()
