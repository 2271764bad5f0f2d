"""The console on a real node: every kind of event the issue lists reaches a viewer, from real clients
(websockets, pusher-http-python), and nothing is even built while no console is open."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pusher
import pytest
import pytest_asyncio
from aiohttp import web
from inprocess import collect, running, types
from websockets.asyncio.client import ClientConnection, connect

from vask.apps.base import App, AppSettings, WebhookTarget
from vask.apps.sqlite import SqliteAppStore
from vask.console.filters import ConsoleFilter

pytestmark = pytest.mark.asyncio(loop_scope="function")

APP = App(id="4242", key="c1-key", secret="c1-secret")


@pytest_asyncio.fixture
async def hooks() -> AsyncIterator[str]:
    """A webhook receiver: /ok answers 200, /fail answers 500."""
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="broken")

    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/fail", fail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def make_app(data_dir: Path, hooks: str) -> None:
    store = SqliteAppStore(data_dir / "vask.db")
    store.create(APP.model_copy(update={"settings": AppSettings(
        client_events=True, webhooks=[WebhookTarget(url=f"{hooks}/ok", event_types=["channel_occupied"]),
                                      WebhookTarget(url=f"{hooks}/fail", event_types=["channel_occupied"])])}))
    store.close()


async def recv(ws: ClientConnection, event: str) -> dict[str, object]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message["event"] == event:
            return message  # type: ignore[no-any-return]


def client(port: int, secret: str = APP.secret) -> pusher.Pusher:
    return pusher.Pusher(app_id=APP.id, key=APP.key, secret=secret, host="127.0.0.1", port=port, ssl=False)


async def test_every_event_type_reaches_the_console(tmp_path: Path, hooks: str) -> None:
    make_app(tmp_path, hooks)
    async with running(data_dir=tmp_path, webhook_allow_private=True, webhook_retry_for=0.0,
                       webhook_vacate_delay=0.0, max_http_body_bytes=50_000, stats_flush_interval=0.2) as (state, port):
        feed = state.console
        # Traffic while nobody watches: no event is built at all.
        async with connect(f"ws://127.0.0.1:{port}/app/{APP.key}?protocol=7") as ws:
            await recv(ws, "pusher:connection_established")
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "quiet"}}))
            await recv(ws, "pusher_internal:subscription_succeeded")
            await asyncio.to_thread(client(port).trigger, "quiet", "e", {"x": 1})
        await asyncio.sleep(0.2)
        assert feed.emitted == 0 and not feed.watching(APP.id)

        viewer = feed.subscribe(APP.id, ConsoleFilter(), max_per_second=1000)
        async with connect(f"ws://127.0.0.1:{port}/app/{APP.key}?protocol=7",
                           additional_headers={"Origin": "https://shop.example"}) as ws:
            established = await recv(ws, "pusher:connection_established")
            socket_id = json.loads(str(established["data"]))["socket_id"]
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "orders"}}))
            await recv(ws, "pusher_internal:subscription_succeeded")
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": "k:bad"}}))
            await recv(ws, "pusher:error")
            auth = client(port).authenticate("private-x", socket_id)
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "private-x", **auth}}))
            await recv(ws, "pusher_internal:subscription_succeeded")
            await ws.send(json.dumps({"event": "client-typing", "channel": "private-x", "data": {"who": "ann"}}))
            presence = client(port).authenticate("presence-room", socket_id, {"user_id": "ann"})
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "presence-room", **presence}}))
            await recv(ws, "pusher_internal:subscription_succeeded")
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": "cache-prices"}}))
            await recv(ws, "pusher:cache_miss")
            await asyncio.to_thread(client(port).trigger, ["orders", "private-x"], "new-order", {"id": "o-42"})
            await recv(ws, "new-order")
            with pytest.raises(pusher.errors.PusherBadAuth):
                await asyncio.to_thread(client(port, "wrong-secret").trigger, "orders", "e", {})
            big = urllib.request.Request(f"http://127.0.0.1:{port}/apps/{APP.id}/events", data=b"x" * 60_000,
                                         method="POST", headers={"Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as too_large:
                await asyncio.to_thread(urllib.request.urlopen, big)
            assert too_large.value.code == 413
            live = await state.stats_query.live(APP.id) if state.stats_query else {}
            assert live["connections"] == 1 and live["channels_occupied"] == 4
            assert live["by_node"] == {"local": 1}
        wanted = {"connection", "disconnection", "subscribed", "unsubscribed", "occupied", "vacated", "member_added",
                  "member_removed", "api_message", "client_event", "cache_miss", "webhook_ok", "webhook_failed",
                  "error", "http_refused"}
        events = await collect(viewer, lambda got: wanted <= set(types(got)) and types(got).count("vacated") == 4
                               and types(got).count("http_refused") == 2)
        by_type = {e.type: [x for x in events if x.type == e.type] for e in events}
        (connection,) = by_type["connection"]
        assert connection.socket_id == socket_id and connection.details["origin"] == "https://shop.example"
        assert connection.node == "local"
        api = by_type["api_message"]
        assert sorted(e.channel or "" for e in api) == ["orders", "private-x"]
        assert api[0].details["event"] == "new-order" and json.loads(api[0].details["data"]) == {"id": "o-42"}
        assert api[0].details["size"] == len(api[0].details["data"])
        (typing,) = by_type["client_event"]
        assert typing.channel == "private-x" and typing.details["event"] == "client-typing"
        assert typing.socket_id == socket_id
        assert by_type["member_added"][0].details["user_id"] == "ann"
        assert by_type["cache_miss"][0].channel == "cache-prices"
        errors = by_type["error"]
        (bad_auth,) = [e for e in errors if e.channel == "private-x"]  # pusher:error + subscription_error
        assert bad_auth.details["status"] == 401 and bad_auth.socket_id == socket_id
        assert str(bad_auth.details["message"]).startswith("Invalid signature")
        refused = {e.details["status"]: e.details["reason"] for e in by_type["http_refused"]}
        assert set(refused) == {401, 413} and "too large" in str(refused[413])
        assert by_type["webhook_ok"][0].details["url"].endswith("/ok")
        failed = by_type["webhook_failed"][0]
        assert failed.details["url"].endswith("/fail") and failed.details["error"] == "HTTP 500"
        assert failed.details["retrying"] is False
        assert by_type["disconnection"][0].socket_id == socket_id
        assert types(events).index("disconnection") > types(events).index("unsubscribed")

        # The same node's stats: the publish to 2 channels and the client event are 3 broadcasts this minute.
        assert state.stats_query is not None
        now = time.time()
        minutes = await state.stats_query.minutes(APP.id, now - 120, now)
        assert sum(m["broadcasts"] for m in minutes) >= 4  # "quiet" earlier, then 2 + 1
        assert max(m["peak_connections"] for m in minutes) == 1
        viewer.close()
        assert not feed.watching(APP.id)


async def test_console_filter_and_speed_limit_on_a_real_node(tmp_path: Path, hooks: str) -> None:
    make_app(tmp_path, hooks)
    async with running(data_dir=tmp_path) as (state, port):
        viewer = state.console.subscribe(APP.id, ConsoleFilter(frozenset({"api_message"}), "news-*"),
                                         max_per_second=5)
        batch = [{"channel": f"news-{n}" if n % 2 else "other", "name": "e", "data": str(n)} for n in range(10)]
        await asyncio.to_thread(client(port).trigger_batch, batch)
        got = await collect(viewer, lambda events: len(events) == 5)
        assert [e.channel for e in got] == [f"news-{n}" for n in (1, 3, 5, 7, 9)]
        assert viewer.dropped == 0  # the 5 others did not match, so they did not count
        await asyncio.to_thread(client(port).trigger_batch, batch)
        await asyncio.sleep(0.3)
        assert viewer.dropped >= 3  # 5 more matching within a second, with about 1 token back


async def test_rate_limited_publishes_show_as_refused(tmp_path: Path) -> None:
    store = SqliteAppStore(tmp_path / "vask.db")
    store.create(APP.model_copy(update={"settings": AppSettings(max_backend_events_per_second=1)}))
    store.close()
    async with running(data_dir=tmp_path) as (state, port):
        viewer = state.console.subscribe(APP.id, ConsoleFilter(frozenset({"http_refused", "api_message"})))
        await asyncio.to_thread(client(port).trigger, "a", "e", {})
        with pytest.raises(pusher.errors.PusherBadStatus):
            await asyncio.to_thread(client(port).trigger, "a", "e", {})
        got = await collect(viewer, lambda events: len(events) == 2)
        assert types(got) == ["api_message", "http_refused"]
        assert got[1].details["status"] == 429 and "Rate limit exceeded" in got[1].details["reason"]
        assert got[1].details["method"] == "POST" and got[1].details["path"] == f"/apps/{APP.id}/events"
