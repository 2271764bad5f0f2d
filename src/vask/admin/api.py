"""The admin HTTP API: accounts, usage and statements as JSON, for the dashboard and for operators.

Off by default: it starts only when ``admin_token`` is set, on ``host``:``admin_port`` (9601 by default).
Every request needs ``Authorization: Bearer <admin_token>``; anything else gets 401.

    GET /api/accounts                               accounts and their plans
    GET /api/accounts/{id}/usage?month=YYYY-MM      usage per app, totals, 80%/100% flags, fan-out comparison
    GET /api/accounts/{id}/statement?month=YYYY-MM  the month's statement (fee, overage, peak, total)
    GET /api/plans
    GET /api/calc?broadcasts=N&subscribers=S        broadcasts billed by Vask vs messages billed per copy
    GET /api/meter                                  this process's meter counters
    GET /api/webhooks                               this process's webhook delivery counters
    GET /api/cluster                                this node's broker counters (a cluster node only)
    GET /metrics                                    all of these and the data plane's, as Prometheus text
    GET /usage                                      this process's memory, as Soketi's metrics port answers it

With ``metrics_require_token = false``, /metrics and /usage answer without the token (for a Prometheus in a
private network), and the port opens even when ``admin_token`` is unset (then only they answer).

``month`` defaults to the current month (UTC). Usage is read from the ledger, which the meter writes every
``usage_flush_interval`` seconds, so the current month lags by at most that.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from vask.billing import calc
from vask.billing.base import BillingStore
from vask.billing.meter import Meter
from vask.billing.plans import AccountNotFound, month_of, parse_month
from vask.billing.statement import account_usage
from vask.cluster.stats import ClusterStats
from vask.webhooks.sender import WebhookStats

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STORE_KEY = web.AppKey("store", BillingStore)
METER_KEY = web.AppKey("meter", Meter)
WEBHOOKS_KEY = web.AppKey("webhooks", WebhookStats)
CLUSTER_KEY = web.AppKey("cluster", ClusterStats)
Clock = Callable[[], float]
DATAPLANE_KEY: web.AppKey[Callable[[], list[str]]] = web.AppKey("dataplane")
CLOCK_KEY: web.AppKey[Clock] = web.AppKey("clock")


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message, "code": status}, status)


OPEN_PATHS = frozenset({"/metrics", "/usage"})


def _auth(token: str | None, open_metrics: bool = False) -> Any:
    expected = f"Bearer {token}".encode() if token else None

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(("/api/", "/metrics", "/usage")):
            return await handler(request)  # the dashboard on the same port has its own sign-in
        if open_metrics and request.path in OPEN_PATHS:
            return await handler(request)
        if expected is None:
            return _error(403, "The admin API is off: set admin_token to use it (only /metrics and /usage are open)")
        given = request.headers.get("Authorization", "").encode()
        # Constant-time comparison: the token is the only thing guarding usage and billing data.
        if not hmac.compare_digest(given, expected):
            response = _error(401, "Missing or wrong admin token: send Authorization: Bearer <admin_token>")
            response.headers["WWW-Authenticate"] = 'Bearer realm="vask-admin"'
            return response
        return await handler(request)

    return check


def _month(request: web.Request) -> tuple[str, str]:
    """(requested month, current month); HTTPBadRequest for a malformed month."""
    current = month_of(request.app[CLOCK_KEY]())
    month = request.query.get("month") or current
    try:
        parse_month(month)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    return month, current


async def _account_report(request: web.Request, fanout: bool) -> web.Response:
    store = request.app[STORE_KEY]
    month, current = _month(request)
    account_id = request.match_info["account"]
    try:
        report = await asyncio.to_thread(account_usage, store, month, current, account_id=account_id)
    except AccountNotFound as exc:
        return _error(404, str(exc))
    usage = report[0]
    if not fanout:
        statement = usage.statement()
        if statement is None:
            return _error(409, f"account {account_id} is on plan {usage.account.plan!r}, which does not exist")
        return _json(statement.to_dict())
    data = usage.to_dict(fanout=True)
    meter = request.app.get(METER_KEY)
    if meter is not None and month == meter.month:
        data["warnings_logged"] = meter.warnings(account_id)  # levels this process has logged this month
    return _json(data)


async def usage(request: web.Request) -> web.Response:
    return await _account_report(request, fanout=True)


async def statement(request: web.Request) -> web.Response:
    return await _account_report(request, fanout=False)


async def accounts(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(request.app[STORE_KEY].list_accounts)
    return _json({"accounts": [a.model_dump(mode="json") for a in found]})


async def plans(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(request.app[STORE_KEY].list_plans)
    return _json({"plans": [p.model_dump(mode="json") for p in found]})


async def calculate(request: web.Request) -> web.Response:
    try:
        broadcasts = int(request.query.get("broadcasts", ""))
        subscribers = int(request.query.get("subscribers", ""))
        comparison = calc.compare(broadcasts, subscribers)
    except ValueError:
        return _error(400, "broadcasts and subscribers must be whole numbers, 0 or more")
    found = await asyncio.to_thread(request.app[STORE_KEY].list_plans)
    return _json({**comparison.to_dict(), "plans": calc.plan_prices(found, broadcasts)})


async def meter_stats(request: web.Request) -> web.Response:
    meter = request.app.get(METER_KEY)
    return _json(meter.stats() if meter is not None else {})


async def webhook_stats(request: web.Request) -> web.Response:
    stats = request.app.get(WEBHOOKS_KEY)
    return _json(stats.as_dict() if stats is not None else {})


async def cluster_stats(request: web.Request) -> web.Response:
    stats = request.app.get(CLUSTER_KEY)
    return _json(stats.as_dict() if stats is not None else {})


async def prometheus(request: web.Request) -> web.Response:
    from vask.admin.metrics import render

    text = render(request.app.get(METER_KEY), request.app.get(WEBHOOKS_KEY),
                  request.app.get(CLUSTER_KEY))
    dataplane = request.app.get(DATAPLANE_KEY)
    if dataplane is not None:
        text += "\n".join(dataplane()) + "\n"
    return web.Response(text=text,
                        content_type="text/plain", headers={"X-Content-Type-Options": "nosniff"},
                        charset="utf-8")


async def memory_usage(request: web.Request) -> web.Response:
    from vask.server.health import usage as current_usage

    return _json(current_usage())


def create_app(store: BillingStore, token: str | None, meter: Meter | None = None,
               clock: Callable[[], float] = time.time, webhooks: WebhookStats | None = None,
               dataplane: Callable[[], list[str]] | None = None, open_metrics: bool = False,
               cluster: ClusterStats | None = None) -> web.Application:
    app = web.Application(middlewares=[_auth(token, open_metrics)])
    if dataplane is not None:
        app[DATAPLANE_KEY] = dataplane
    app[STORE_KEY] = store
    app[CLOCK_KEY] = clock
    if meter is not None:
        app[METER_KEY] = meter
    if webhooks is not None:
        app[WEBHOOKS_KEY] = webhooks
    if cluster is not None:
        app[CLUSTER_KEY] = cluster
    app.router.add_get("/api/accounts", accounts)
    app.router.add_get("/api/accounts/{account}/usage", usage)
    app.router.add_get("/api/accounts/{account}/statement", statement)
    app.router.add_get("/api/plans", plans)
    app.router.add_get("/api/calc", calculate)
    app.router.add_get("/api/meter", meter_stats)
    app.router.add_get("/api/webhooks", webhook_stats)
    app.router.add_get("/api/cluster", cluster_stats)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/usage", memory_usage)
    return app


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app``; return the runner (``await runner.cleanup()`` to stop) and the port it listens on."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, int(runner.addresses[0][1])
