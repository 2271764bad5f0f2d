"""The console and the stats across two real nodes on a real broker (Redis, and NATS): an event on node B
reaches a viewer on node A, B stops sending when A's viewers are gone (or A died), and stats sum both nodes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pusher
import pytest
from inprocess import collect, running
from websockets.asyncio.client import ClientConnection, connect

from vask.apps.base import App
from vask.apps.sqlite import SqliteAppStore
from vask.console.filters import ConsoleFilter

pytestmark = pytest.mark.asyncio(loop_scope="function")

APP = App(id="7373", key="cc-key", secret="cc-secret")


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def subscribed(port: int, channel: str) -> tuple[ClientConnection, str]:
    ws = await connect(f"ws://127.0.0.1:{port}/app/{APP.key}?protocol=7")
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if message["event"] == "pusher:connection_established":
            socket_id = json.loads(message["data"])["socket_id"]
            await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
        elif message["event"] == "pusher_internal:subscription_succeeded":
            return ws, socket_id


async def test_console_and_stats_across_two_nodes(tmp_path: Path, shared_engine: str) -> None:
    store = SqliteAppStore(tmp_path / "vask.db")
    store.create(APP)
    store.close()
    common = {"data_dir": tmp_path, "broker": shared_engine, "broker_prefix": f"vt{uuid.uuid4().hex[:10]}",
              "node_timeout": 2.0, "console_watch_interval": 0.3, "stats_flush_interval": 0.2}
    tag = uuid.uuid4().hex[:6]
    async with running(node_id=f"a-{tag}", region="eu", **common) as (a, port_a), \
            running(node_id=f"b-{tag}", region="us", **common) as (b, port_b):
        assert not b.console.watching(APP.id)
        viewer = a.console.subscribe(APP.id, ConsoleFilter(), max_per_second=1000)
        await eventually(lambda: b.console.watching(APP.id))  # B heard A's announcement

        ws_a, _ = await subscribed(port_a, "orders")
        ws_b, socket_b = await subscribed(port_b, "orders")
        sdk = pusher.Pusher(app_id=APP.id, key=APP.key, secret=APP.secret, host="127.0.0.1", port=port_b, ssl=False)
        await asyncio.to_thread(sdk.trigger, "orders", "new-order", {"id": 1})
        events = await collect(viewer, lambda got: any(e.type == "api_message" for e in got)
                               and any(e.type == "connection" and e.node == f"b-{tag}" for e in got)
                               and any(e.type == "occupied" for e in got))
        (api,) = [e for e in events if e.type == "api_message"]
        assert api.node == f"b-{tag}" and api.region == "us" and api.channel == "orders"
        assert json.loads(api.details["data"]) == {"id": 1}
        assert any(e.type == "subscribed" and e.socket_id == socket_b and e.node == f"b-{tag}" for e in events)
        # "occupied" is reported once cluster-wide, by whichever node saw the first subscriber.
        assert len([e for e in events if e.type == "occupied"]) == 1
        # Live counts and stats, read on A, cover both nodes.
        assert a.stats_query is not None
        await eventually(lambda: a.hub.app_connections(APP.id) == 2)
        live = await a.stats_query.live(APP.id)
        assert live["connections"] == 2
        assert live["by_node"] == {f"a-{tag}": 1, f"b-{tag}": 1}
        assert live["by_region"] == {"eu": 1, "us": 1}
        assert live["channels_occupied"] == 1
        now = time.time()

        async def totals() -> tuple[int, int]:
            minutes = await a.stats_query.minutes(APP.id, now - 60, now + 1)  # type: ignore[union-attr]
            return sum(m["broadcasts"] for m in minutes), sum(m["deliveries"] for m in minutes)

        deadline = time.monotonic() + 10
        while await totals() != (1, 2):  # B's broadcast counted once, delivered once on each node
            assert time.monotonic() < deadline, f"stats not summed across nodes: {await totals()}"
            await asyncio.sleep(0.1)

        # The last viewer on A goes: B stops emitting that app's events at once (an empty announcement).
        viewer.close()
        await eventually(lambda: not b.console.watching(APP.id), timeout=3)
        emitted = b.console.emitted
        await asyncio.to_thread(sdk.trigger, "orders", "unseen", {})
        await asyncio.sleep(0.2)
        assert b.console.emitted == emitted

        # A viewer's node that dies without a word: B forgets the app after 3 missed announcements.
        a.console.subscribe(APP.id)
        await eventually(lambda: b.console.watching(APP.id), timeout=3)
        for task in a.console._tasks:  # A's console bus stops dead (no goodbye on the bus)
            task.cancel()
        await eventually(lambda: not b.console.watching(APP.id), timeout=3 * 0.3 + 2)
        await ws_a.close()
        await ws_b.close()
