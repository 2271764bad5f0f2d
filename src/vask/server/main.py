"""Start the server: open the store, listen on one port, sweep timers, shut down gracefully on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import ssl
import sys
import time
from typing import TYPE_CHECKING

from vask import __version__, tasks
from vask.billing.base import BillingStore
from vask.billing.meter import Meter
from vask.config import Settings
from vask.console import logs
from vask.console.wiring import Console, open_console
from vask.core.observer import Observers
from vask.factory import cluster_of, make_hub, make_usage_counters, open_billing_store, open_store
from vask.masking import mask_url
from vask.protocol import constants as c
from vask.server import banner, health, xhr_session
from vask.server.appcache import AppCache
from vask.server.http import HttpProtocol
from vask.server.node import Flusher, ServerState
from vask.webhooks import WebhookService

if TYPE_CHECKING:
    from aiohttp.web import AppRunner

    from vask.apps.base import AppStore
    from vask.webhooks.deliveries import DeliveryLog
    from vask.webhooks.sender import WebhookStats

log = logging.getLogger("vask")


def run(settings: Settings) -> None:
    if settings.workers > 1 and multiprocessing.parent_process() is None:
        from vask.server.workers import supervise

        supervise(settings, run)
        return
    logs.configure(settings.log_level, settings.log_format)
    try:
        import uvloop
    except ImportError:  # uvloop is optional (not on Windows); asyncio's loop works, slower
        asyncio.run(serve(settings))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(settings))


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.ssl_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(settings.ssl_cert), str(settings.ssl_key) if settings.ssl_key else None)
    return context


async def serve(settings: Settings, started: asyncio.Future[int] | None = None, *,
                stop: asyncio.Event | None = None, state_ready: asyncio.Future[ServerState] | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set). In-process tests pass ``stop`` and ``state_ready``."""
    store = open_store(settings)
    billing: BillingStore | None = None
    meter: Meter | None = None
    admin: AppRunner | None = None
    webhooks: WebhookService | None = None
    console: Console | None = None
    try:
        billing = open_billing_store(settings)
        print(banner.store_line(settings), flush=True)
        app_lines, shown_app = await asyncio.to_thread(banner.prepare_apps, store, settings)
        for line in app_lines:
            print(line, flush=True)
        loop = asyncio.get_running_loop()
        apps = AppCache(store, settings.app_cache_ttl)
        hub = make_hub(settings, apps.by_id)
        cluster = cluster_of(hub)
        meter = Meter(billing, counters=make_usage_counters(settings, hub),
                      flush_interval=settings.usage_flush_interval,
                      refresh_interval=max(settings.app_cache_ttl, 1.0))
        await meter.start()
        if isinstance(hub.observer, Observers):
            hub.observer.add(meter)
        else:
            hub.observer = Observers(hub.observer, meter)
        # A cluster holds channel_vacated/member_removed in the shared store (vask.cluster.debounce), since the
        # return that cancels them may happen on another node; the service must not hold them a second time.
        hook_settings = settings.model_copy(update={"webhook_vacate_delay": 0.0}) \
            if cluster is not None else settings
        webhooks = WebhookService(hook_settings, apps=apps)
        await webhooks.start()
        assert isinstance(hub.observer, Observers)
        hub.observer.add(webhooks)
        console = open_console(settings, hub, cluster)  # the debug console's feed and the per-minute stats
        webhooks.sender.console = console.feed
        await console.start()
        state = ServerState(settings, hub, apps, Flusher(loop, lambda: hub), meter=meter,
                            stats=console.recorder, stats_query=console.query, cluster=cluster)
        if cluster is not None:
            await cluster.start()
            print(f"Vask node {cluster.node_id} joined the cluster through {mask_url(settings.broker or '')}",
                  flush=True)
        context = _ssl_context(settings)
        server = await loop.create_server(lambda: HttpProtocol(state), settings.host, settings.port,
                                          ssl=context, backlog=4096, reuse_address=True,
                                          reuse_port=settings.workers > 1 or None)
        port = server.sockets[0].getsockname()[1]
        if settings.admin_token or not settings.metrics_require_token or settings.dashboard_enabled:
            try:
                admin = await _start_admin(settings, billing, meter, webhooks.stats, state=state, store=store,
                                           data_port=port, deliveries=webhooks.sender.deliveries)
            except OSError as exc:
                if settings.admin_token or not settings.metrics_require_token:
                    raise
                # The dashboard alone is never worth refusing realtime traffic for (the port may be taken by
                # another local server): say so and serve the data plane.
                print(f"WARNING: the dashboard is off: cannot listen on admin_port {settings.admin_port}: {exc}",
                      flush=True)
        scheme = "wss" if context else "ws"
        if shown_app is not None:
            for line in banner.snippets(settings, port, shown_app):
                print(line, flush=True)
        print(f"Vask {__version__} listening on {scheme}://{settings.host}:{port} "
              f"(WebSocket /app/{{key}}, HTTP API /apps/{{app_id}}/...)", flush=True)
        if started is not None:
            started.set_result(port)
        if state_ready is not None:
            state_ready.set_result(state)
        stop = stop or asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        sweeper = tasks.spawn(_sweep(state), "sweep")
        watcher = tasks.spawn(health.watch_store(store, state.store_health, settings.store_check_interval),
                              "app-store-watch")
        await stop.wait()
        sweeper.cancel()
        watcher.cancel()
        await shutdown(state, server)
        if cluster is not None:
            await cluster.stop()
        # After the connections closed and the cluster hub flushed: their vacates and removals go out too.
        await webhooks.stop()
    finally:
        if webhooks is not None and not webhooks.sender.stopped:
            try:
                await webhooks.stop(grace=0)  # an error path: give up what is pending, but say so
            except Exception:
                log.exception("could not stop the webhook sender")
        if admin is not None:
            await admin.cleanup()
        if console is not None:
            try:
                await console.stop()  # the last stats, counted since the last periodic flush
            except Exception:
                log.exception("could not write the last stats at shutdown")
            console.close()
        if meter is not None:
            try:
                await meter.stop()  # the last usage, counted since the last periodic flush
            except Exception:
                log.exception("could not write the last usage at shutdown")
        if billing is not None:
            billing.close()
        store.close()


async def _start_admin(settings: Settings, billing: BillingStore, meter: Meter, webhook_stats: WebhookStats,
                       *, state: ServerState, store: AppStore | None = None,
                       data_port: int | None = None, deliveries: DeliveryLog | None = None) -> AppRunner:
    """The control plane: the admin API (token, or /metrics and /usage open) and the dashboard, on one port."""
    from aiohttp import web

    from vask.admin import api  # aiohttp loads only when the control plane is on

    admin_api = bool(settings.admin_token) or not settings.metrics_require_token
    if admin_api:
        app = api.create_app(billing, settings.admin_token, meter, webhooks=webhook_stats,
                             dataplane=lambda: state.metrics.render(
                                 [p.conn for p in state.protocols],
                                 {app_id: len(s.connections) for app_id, s in state.hub.apps.items()}),
                             open_metrics=not settings.metrics_require_token,
                             cluster=state.cluster.stats if state.cluster is not None else None)
    else:
        app = web.Application()
    login = None
    if settings.dashboard_enabled and store is not None and data_port is not None:
        from vask.dashboard.setup import mount

        login = mount(app, settings, store, billing, state, data_port, deliveries)
    host = settings.dashboard_host or settings.host
    runner, port = await api.start(app, host, settings.admin_port)
    if admin_api:
        guarded = "bearer token required" if settings.metrics_require_token else "/metrics and /usage without token"
        print(f"Vask admin API listening on http://{host}:{port}/api/ and /metrics ({guarded})", flush=True)
    if login is not None:
        base = (settings.dashboard_public_url or f"http://{host}:{port}").rstrip("/")
        print(f"Vask dashboard on {base}/ - one-time operator login (valid 1 hour): {base}{login}", flush=True)
    return runner


async def _sweep(state: ServerState) -> None:
    refreshed = time.monotonic()
    while True:
        await asyncio.sleep(state.settings.sweep_interval)
        try:
            state.hub.sweep(state.clock(), state.settings.pong_timeout)
            xhr_session.sweep(state, state.clock())
            if time.monotonic() - refreshed >= max(state.settings.app_cache_ttl, 0.5):
                refreshed = time.monotonic()
                # Open connections follow changes made with `vask apps ...` (settings, disable, delete).
                for app_id in list(state.hub.apps):
                    state.hub.refresh_app(app_id, await state.apps.by_id(app_id))
        except Exception:  # a bug here must not stop pings and timeouts for everyone
            log.exception("sweep failed")


async def shutdown(state: ServerState, server: asyncio.Server) -> None:
    """Stop accepting, close every WebSocket with 4200 (reconnect now), wait for them, then return."""
    count = state.hub.connection_count
    log.info("shutting down: closing %d connection%s", count, "" if count == 1 else "s")
    state.shutting_down = True
    # The port stays open while draining: /ready answers 503 (load balancers stop sending traffic) and new
    # WebSocket connections are told to reconnect elsewhere (4200).
    conns = [conn for app_state in list(state.hub.apps.values()) for conn in list(app_state.connections)]
    # pusher-js reconnects at once on 4200: closing everyone in the same instant would make them all
    # come back at the same instant. Spread the closes over up to a second, in ten batches.
    batch = max(1, -(-len(conns) // 10))
    pause = min(state.settings.shutdown_grace / 4, 1.0) / 10 if len(conns) > 100 else 0.0
    for start in range(0, len(conns), batch):
        for conn in conns[start:start + batch]:
            state.hub.close(conn, c.RECONNECT, "Server is shutting down. Please reconnect shortly.")
        if pause:
            await asyncio.sleep(pause)
    for proto in list(state.protocols):
        if proto.ws is None and not proto.queue and proto.transport is not None:
            proto.transport.close()  # idle keep-alive HTTP connections
    deadline = time.monotonic() + state.settings.shutdown_grace
    # HTTP-transport sessions leave the registry once their close line went out: at once on a held stream or poll,
    # on the next poll for a poller between two; one that does not come back within 2 s was abandoned.
    polls_until = time.monotonic() + min(state.settings.http_session_timeout, 2.0)
    while (any(p.ws is not None for p in state.protocols) or
           (state.http_sessions and time.monotonic() < polls_until)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # close handshakes in flight; the listener still answers /ready with 503
    server.close()
    while state.protocols and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for proto in list(state.protocols):
        if proto.transport is not None:
            proto.transport.abort()
    print("Vask stopped.", file=sys.stderr, flush=True)
