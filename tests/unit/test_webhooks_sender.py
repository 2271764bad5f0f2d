"""WebhookSender against a real aiohttp receiver in the same loop: queue bound, counters, redirects, ordering,
signatures, a rotated secret, and the refusal of private addresses at connect time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pusher
from aiohttp import web

from vask.apps.base import App, AppSettings, WebhookTarget
from vask.config import Settings
from vask.webhooks import events as ev
from vask.webhooks.sender import WebhookSender

SEEN = web.AppKey("seen", list)
FAST = {"webhook_allow_private": True, "webhook_retry_base": 0.02, "webhook_retry_max_delay": 0.05,
        "webhook_timeout": 2.0}


def make_app(url: str, secret: str = "s", **target: Any) -> App:
    return App(id="5", key="k", secret=secret,
               settings=AppSettings(webhooks=[WebhookTarget(url=url, **target)]))


async def with_receiver(statuses: list[int], body: Callable[[web.Application, str], Awaitable[None]]) -> Any:
    """Run ``body(app, base_url)`` with a receiver answering ``statuses`` in turn, then 200."""
    seen: list[tuple[str, dict[str, str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.headers), await request.read()))
        status = statuses.pop(0) if statuses else 200
        if status == 302:
            return web.Response(status=302, headers={"Location": "/elsewhere"})
        return web.Response(status=status, body=b"x" * 100_000)  # more than the sender reads

    application = web.Application()
    application.router.add_post("/{tail:.*}", handle)
    application[SEEN] = seen
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await body(application, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()
    return seen


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_overflow_is_counted_and_the_rest_delivered_in_order() -> None:
    async def body(application: web.Application, base: str) -> None:
        sender = WebhookSender(Settings(**FAST, webhook_queue_size=3))
        app = make_app(base + "/hook")
        for i in range(5):  # before start: nothing can drain yet, so the bound is what limits
            sender.submit(app, ev.channel_event(ev.OCCUPIED, f"same-{0}") | {"n": i})
        assert sender.stats.events_overflowed == 2 and sender.stats.events_queued == 3
        await sender.start()
        await until(lambda: sender.stats.events_delivered == 3)
        await sender.stop(1.0)
        seen = application[SEEN]
        assert [json.loads(b)["events"][0]["n"] for _, _, b in seen] == [0, 1, 2]

    asyncio.run(with_receiver([], body))


def test_redirects_are_not_followed_and_count_as_failures() -> None:
    async def body(application: web.Application, base: str) -> None:
        sender = WebhookSender(Settings(**FAST))
        await sender.start()
        sender.submit(make_app(base + "/hook"), ev.channel_event(ev.VACATED, "c"))
        await until(lambda: sender.stats.requests_delivered == 1)
        await sender.stop(1.0)
        assert [path for path, _, _ in application[SEEN]] == ["/hook", "/hook"]
        assert sender.stats.attempts_failed == 1 and sender.stats.retries == 1

    asyncio.run(with_receiver([302], body))


def test_each_attempt_is_signed_with_the_latest_secret() -> None:
    async def body(application: web.Application, base: str) -> None:
        sender = WebhookSender(Settings(**{**FAST, "webhook_retry_base": 0.3, "webhook_retry_max_delay": 0.3}))
        await sender.start()
        sender.submit(make_app(base + "/hook", secret="old"), ev.channel_event(ev.OCCUPIED, "c"))
        await until(lambda: len(application[SEEN]) == 1)
        # The secret is rotated while the retry waits; the next event brings the new app record.
        sender.submit(make_app(base + "/hook", secret="new"), ev.channel_event(ev.OCCUPIED, "c2"))
        await until(lambda: sender.stats.events_delivered == 2)
        await sender.stop(1.0)
        _, headers, raw = application[SEEN][1]
        client = pusher.Pusher(app_id="5", key="k", secret="new")
        assert client.validate_webhook("k", headers["X-Pusher-Signature"], raw.decode()) is not None
        assert headers["Content-Type"] == "application/json"

    asyncio.run(with_receiver([500], body))


def test_private_addresses_are_refused_at_connect_time() -> None:
    async def body(application: web.Application, base: str) -> None:
        sender = WebhookSender(Settings(**{**FAST, "webhook_allow_private": False}))
        await sender.start()
        port = base.rsplit(":", 1)[1]
        app = App(id="5", key="k", secret="s", settings=AppSettings(webhooks=[
            WebhookTarget(url=f"http://localhost:{port}/by-name"),
            WebhookTarget(url=f"http://[::ffff:127.0.0.1]:{port}/mapped")]))
        sender.submit(app, ev.channel_event(ev.OCCUPIED, "c"))
        await until(lambda: sender.stats.events_refused == 2)
        await sender.stop(0.5)
        assert application[SEEN] == [] and sender.stats.attempts_failed == 0

    asyncio.run(with_receiver([], body))


def test_batches_and_stats() -> None:
    async def body(application: web.Application, base: str) -> None:
        sender = WebhookSender(Settings(**FAST, webhook_batch_window=0.1))
        await sender.start()
        app = make_app(base + "/hook", batch=True)
        for i in range(7):
            sender.submit(app, ev.channel_event(ev.OCCUPIED, f"ch-{i}"))
        await until(lambda: sender.stats.events_delivered == 7)
        await sender.stop(1.0)
        assert [len(json.loads(b)["events"]) for _, _, b in application[SEEN]] == [7]
        assert sender.stats.as_dict()["requests_delivered"] == 1
        assert sender.pending() == 0 and sender.targets == {}

    asyncio.run(with_receiver([], body))
