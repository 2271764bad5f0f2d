"""A cluster node's HTTP API prepares (routes, verifies the signature), quota-checks and charges each request
once, also when the answer needs the cluster's shared state and so comes after an await, and the console notes
its publishes and refusals once; work that waits on an app lookup is a kept task (vask.tasks). Real nodes run
in the test's loop, on the real Redis or NATS."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pusher
import pytest
from inprocess import collect, running
from pusher.errors import PusherBadStatus
from websockets.asyncio.client import connect

from vask import tasks
from vask.apps.base import App, AppSettings
from vask.apps.sqlite import SqliteAppStore
from vask.console.filters import ConsoleFilter
from vask.protocol import rest

pytestmark = pytest.mark.asyncio(loop_scope="function")

APP = App(id="7474", key="once-key", secret="once-secret",
          settings=AppSettings(max_read_requests_per_second=1, max_backend_events_per_second=3))


async def test_each_request_is_prepared_and_charged_once(tmp_path: Path, shared_engine: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteAppStore(tmp_path / "vask.db")
    store.create(APP)
    store.close()
    prepared: list[str] = []
    real_prepare = rest.prepare

    def prepare(method: str, path: str, *args: Any) -> Any:
        prepared.append(f"{method} {path}")
        return real_prepare(method, path, *args)

    monkeypatch.setattr(rest, "prepare", prepare)
    async with running(data_dir=tmp_path, broker=shared_engine, broker_prefix=f"vt{uuid.uuid4().hex[:10]}",
                       node_timeout=2.0, app_cache_ttl=60.0) as (state, port):
        assert state.cluster is not None  # a cluster node, with one node here
        charged: list[str] = []
        real_check = state.limits.check

        def check(call: rest.RestCall) -> Any:
            charged.append(call.operation.name)
            return real_check(call)

        monkeypatch.setattr(state.limits, "check", check)
        viewer = state.console.subscribe(APP.id, ConsoleFilter(frozenset({"http_refused", "api_message"})),
                                         max_per_second=1000)
        sdk = pusher.Pusher(app_id=APP.id, key=APP.key, secret=APP.secret, host="127.0.0.1", port=port, ssl=False)

        # a read while the app is not cached yet: loaded first, then prepared once; answered from shared state
        assert await asyncio.to_thread(sdk.channels_info) == {"channels": {}}
        assert (prepared, charged) == ([f"GET /apps/{APP.id}/channels"], ["CHANNELS"])

        # a publish asking for attributes, the app cached: 2 of the 3 tokens, once
        prepared.clear()
        charged.clear()
        events = [{"channel": name, "name": "e", "data": "{}", "info": "subscription_count"} for name in "ab"]
        assert await asyncio.to_thread(sdk.trigger_batch, events) == {
            "batch": [{"subscription_count": 0}, {"subscription_count": 0}]}
        assert (prepared, charged) == ([f"POST /apps/{APP.id}/batch_events"], ["BATCH"])

        # reads until one is refused (1 per second): each one prepared and charged once
        prepared.clear()
        charged.clear()
        for sent in range(1, 11):
            try:
                await asyncio.to_thread(sdk.channels_info)
            except PusherBadStatus as exc:
                assert str(exc).startswith("429: "), exc
                assert len(prepared) == len(charged) == sent, (prepared, charged)
                break
        else:
            raise AssertionError("10 reads, none refused at 1 per second")

        await asyncio.to_thread(sdk.trigger, "marker", "e", {})  # the last token (the bucket holds 3)
        got = await collect(viewer, lambda events: any(e.channel == "marker" for e in events))
        assert [(e.type, e.channel) for e in got] == [
            ("api_message", "a"), ("api_message", "b"), ("http_refused", None), ("api_message", "marker")]
        assert got[2].details["status"] == 429 and "Rate limit exceeded" in got[2].details["reason"]


async def test_work_after_an_app_lookup_is_kept_until_done(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP API, WebSocket and HTTP-transport paths that wait for an app lookup run as vask.tasks tasks,
    kept (and their failures logged) until done, not as tasks only the loop's weak set knows of."""
    store = SqliteAppStore(tmp_path / "vask.db")
    for n in (1, 2, 3):  # one app per path, each still to be looked up
        store.create(App(id=f"757{n}", key=f"held-{n}", secret="held-secret"))
    store.close()
    async with running(data_dir=tmp_path) as (state, port):
        release = asyncio.Event()

        def held(lookup: Any) -> Any:
            async def wait_then_look_up(name: str) -> Any:
                await release.wait()
                return await lookup(name)
            return wait_then_look_up

        monkeypatch.setattr(state.apps, "by_id", held(state.apps.by_id))
        monkeypatch.setattr(state.apps, "by_key", held(state.apps.by_key))
        sdk = pusher.Pusher(app_id="7571", key="held-1", secret="held-secret", host="127.0.0.1", port=port,
                            ssl=False)
        requests = [
            ("answer GET /apps/7571/channels", asyncio.to_thread(sdk.channels_info)),
            ("open a WebSocket for app key held-2", connect(f"ws://127.0.0.1:{port}/app/held-2?protocol=7")),
            ("open HTTP session held-3/", http_poll(port, "/pusher/app/held-3/1/abcdefgh/xhr?protocol=7")),
        ]
        for name, work in requests:
            before = tasks.running()
            pending = asyncio.ensure_future(work)
            deadline = time.monotonic() + 10
            while not any(task.get_name().startswith(name) for task in asyncio.all_tasks()):
                assert time.monotonic() < deadline, f"no task {name!r}: {asyncio.all_tasks()}"
                await asyncio.sleep(0.02)
            assert tasks.running() == before + 1, name
            release.set()
            result = await asyncio.wait_for(pending, 10)
            release.clear()
            if name.startswith("answer"):
                assert result == {"channels": {}}
            elif name.startswith("open a WebSocket"):
                assert "pusher:connection_established" in str(await asyncio.wait_for(result.recv(), 5))
                await result.close()
            else:
                assert result.startswith(b"HTTP/1.1 200 ") and b"o\n" in result, result
            assert tasks.running() == before, name


async def http_poll(port: int, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer
