"""The admin HTTP API (aiohttp) on an in-memory ledger: bearer token, usage, statements, calc, meter, and the
Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from vask.admin.api import create_app
from vask.apps.base import App
from vask.billing.base import AccountMonth, AppUsage, UsageBatch
from vask.billing.memory import MemoryBillingStore
from vask.billing.meter import Meter
from vask.billing.plans import Account
from vask.webhooks.sender import WebhookStats

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2025, 6, 20, tzinfo=UTC).timestamp()


def run(scenario: Callable[[TestClient[Any, Any], MemoryBillingStore], Awaitable[None]]) -> None:
    store = MemoryBillingStore()
    store.create_account(Account(id="acme", name="Acme", plan="pro"))
    store.record(UsageBatch([AppUsage("acme", "a1", "2025-06", 10_500_000, 21_000_000, 40)],
                            [AccountMonth("acme", "2025-06", 42)]))

    async def main() -> None:
        meter = Meter(store, clock=lambda: NOW)
        meter.load()
        async with TestClient(TestServer(create_app(store, TOKEN, meter, clock=lambda: NOW))) as client:
            await scenario(client, store)

    asyncio.run(main())


def test_requires_the_bearer_token() -> None:
    async def scenario(client: TestClient[Any, Any], store: MemoryBillingStore) -> None:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            response = await client.get("/api/accounts/acme/usage", headers=headers)
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await client.get("/api/accounts", headers=AUTH)).status == 200

    run(scenario)


def test_usage_and_statement() -> None:
    async def scenario(client: TestClient[Any, Any], store: MemoryBillingStore) -> None:
        usage = await (await client.get("/api/accounts/acme/usage", headers=AUTH)).json()
        assert usage["month"] == "2025-06"  # the current month by default
        assert (usage["broadcasts"], usage["deliveries"], usage["peak_connections"]) == (10_500_000, 21_000_000, 42)
        assert usage["warnings"] == {"broadcasts": 100, "connections": None}
        assert usage["fanout"]["per_message_messages"] == 31_500_000
        assert usage["apps"] == [{"app": "a1", "broadcasts": 10_500_000, "deliveries": 21_000_000,
                                  "peak_connections": 40, "fanout": usage["apps"][0]["fanout"]}]
        statement = await (await client.get("/api/accounts/acme/statement?month=2025-06", headers=AUTH)).json()
        assert statement["overage_broadcasts"] == 500_000 and statement["overage_cents"] == 50
        assert statement["total_cents"] == 1_050 and statement["total"] == "$10.50"
        empty = await (await client.get("/api/accounts/acme/statement?month=2025-05", headers=AUTH)).json()
        assert empty["used_broadcasts"] == 0 and empty["total_cents"] == 1_000
        missing = await client.get("/api/accounts/nobody/usage", headers=AUTH)
        assert missing.status == 404 and "nobody" in (await missing.json())["error"]
        assert (await client.get("/api/accounts/acme/usage?month=June", headers=AUTH)).status == 400

    run(scenario)


def test_lists_calc_and_meter() -> None:
    async def scenario(client: TestClient[Any, Any], store: MemoryBillingStore) -> None:
        accounts = await (await client.get("/api/accounts", headers=AUTH)).json()
        assert [a["id"] for a in accounts["accounts"]] == ["default", "acme"]
        plans = await (await client.get("/api/plans", headers=AUTH)).json()
        assert {p["name"] for p in plans["plans"]} == {"free", "pro", "unlimited"}
        calc = await (await client.get("/api/calc?broadcasts=100&subscribers=9", headers=AUTH)).json()
        assert calc["per_message_messages"] == 1_000 and calc["ratio"] == 10.0
        assert (await client.get("/api/calc?broadcasts=x&subscribers=1", headers=AUTH)).status == 400
        stats = await (await client.get("/api/meter", headers=AUTH)).json()
        assert stats["month"] == "2025-06" and stats["broadcasts_total"] == 0

    run(scenario)


def test_metrics_in_the_prometheus_text_format() -> None:
    store = MemoryBillingStore()
    app = App(id="a1", key="k1", secret="s", account_id="default")
    hooks = WebhookStats()

    async def main() -> None:
        meter = Meter(store, clock=lambda: NOW)
        meter.load()
        async with TestClient(TestServer(create_app(store, TOKEN, meter, clock=lambda: NOW,
                                                    webhooks=hooks))) as client:
            assert (await client.get("/metrics")).status == 401  # the same token as the rest
            meter.broadcast(app, "news", 250)
            meter.broadcast(app, "news", 250)
            hooks.events_queued, hooks.attempts_failed, hooks.retries = 5, 3, 3
            response = await client.get("/metrics", headers=AUTH)
            assert response.status == 200 and response.content_type == "text/plain"
            text = await response.text()
            samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
            assert samples["vask_broadcasts_total"] == "2" and samples["vask_deliveries_total"] == "500"
            assert samples["vask_webhook_events_queued_total"] == "5"
            assert samples["vask_webhook_attempts_failed_total"] == "3"
            assert samples["vask_webhook_events_given_up_total"] == "0"
            assert "# TYPE vask_broadcasts_total counter" in text and "# TYPE vask_connections gauge" in text
            webhooks = await (await client.get("/api/webhooks", headers=AUTH)).json()
            assert webhooks["retries"] == 3

    asyncio.run(main())
