"""Several real `vask serve` nodes on one broker (Redis or NATS), and raw WebSocket clients to drive them.

A cluster is 2-3 processes sharing ONE data dir (the SQLite app store, apps created once with the CLI),
each on its own port (port 0), all with the same broker URL and a prefix unique to the test, so tests that
share the machine's Redis/NATS never see each other. Nothing is faked: brokers that are not reachable skip
the test with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import TestApp, VaskServer, create_apps, start_server
from private_nats import NATS_SERVER, NATS_URL, REDIS_URL, free_port, reachable

NODE_TIMEOUT = 2.0  # VASK_NODE_TIMEOUT for every cluster here: dead nodes are noticed within seconds

APP = {"id": "515151", "key": "cluster-key", "secret": "cluster-secret",
       "client_events": True, "subscription_count_events": True}


def broker_problem(kind: str) -> str | None:
    """Why a cluster on this kind of broker cannot run here, or None."""
    if kind == "redis-cluster":
        from private_redis_cluster import problem

        return problem()
    if kind == "redis":
        return None if reachable("127.0.0.1", 6379) else "Redis is not reachable on 127.0.0.1:6379"
    if not reachable("127.0.0.1", 4222):
        return "NATS is not reachable on 127.0.0.1:4222"
    if importlib.util.find_spec("vask.broker.nats") is None:
        return "the NATS backend is not implemented yet (no vask.broker.nats module)"
    return None


@pytest.fixture(params=["redis", "nats"], name="broker")
def broker_fixture(request: pytest.FixtureRequest) -> str:
    """The broker URL of the machine's real Redis or NATS (skips, with the reason, when unusable)."""
    problem = broker_problem(request.param)
    if problem:
        pytest.skip(problem)
    return REDIS_URL if request.param == "redis" else NATS_URL


# -- a cluster of nodes ----------------------------------------------------------------------


@dataclass
class Cluster:
    data_dir: Path
    broker: str
    apps: list[dict[str, Any]]
    prefix: str = field(default_factory=lambda: f"vt{uuid.uuid4().hex[:12]}")
    env: dict[str, str] = field(default_factory=dict)
    nodes: list[VaskServer] = field(default_factory=list)
    made: dict[str, TestApp] = field(default_factory=dict)
    broker_via_env: bool = False  # VASK_BROKER instead of --broker

    def __post_init__(self) -> None:
        self.made = create_apps(self.data_dir, self.apps)  # once: every node reads the same SQLite file

    def node(self, *extra_args: str, env: dict[str, str] | None = None, listeners: int = 1,
             node_id: str | None = None) -> VaskServer:
        """Start one more node (``--workers N``: pass ``listeners=N`` to wait for every worker)."""
        node_env = {"VASK_BROKER_PREFIX": self.prefix, "VASK_NODE_TIMEOUT": str(NODE_TIMEOUT),
                    "VASK_APP_CACHE_TTL": "1", **self.env, **(env or {})}
        args: tuple[str, ...] = ("--node-id", node_id or f"node{len(self.nodes)}", *extra_args)
        if self.broker_via_env:
            node_env["VASK_BROKER"] = self.broker
        else:
            args = ("--broker", self.broker, *args)
        server = start_server(self.data_dir, self.apps, args, node_env, create=False, listeners=listeners)
        self.nodes.append(server)
        return server

    def start(self, count: int) -> list[VaskServer]:
        """Start ``count`` nodes side by side (node0, node1, …), returned in that order."""
        first = len(self.nodes)
        with ThreadPoolExecutor(count) as pool:
            started = list(pool.map(lambda i: self.node(node_id=f"node{first + i}"), range(count)))
        return started

    def stop(self) -> None:
        for server in self.nodes:
            if server.process.poll() is None:
                server.process.terminate()  # a supervisor (--workers) stops its workers on SIGTERM
        for server in self.nodes:
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        drop_broker_state(self.broker, self.prefix)


async def shared_document(cluster: Cluster, key: str) -> dict[str, Any] | None:
    """A document of the cluster's shared state, read through the store class the nodes use (key names come
    from vask.cluster.sync), for what only the shared state shows, such as which node holds what."""
    from vask.cluster.store import SharedStore, decode

    ttls = {"nodes": NODE_TIMEOUT, "locks": max(NODE_TIMEOUT, 10.0), "cache": 30 * 60.0}  # as vask.factory
    store: SharedStore
    if cluster.broker.startswith("redis"):
        from vask.cluster.redis_store import RedisStore

        store = RedisStore(cluster.broker, cluster.prefix, ttls)
    else:
        from vask.cluster.nats_store import NatsStore

        store = NatsStore(cluster.broker, cluster.prefix, ttls)
    await store.start()
    try:
        raw, _ = await store.get(key)
    finally:
        await store.close()
    return decode(raw)


def drop_broker_state(url: str, prefix: str) -> None:
    """Remove what a test's nodes left under its prefix on the shared Redis or NATS (documents do not expire)."""
    if "+cluster://" in url or not reachable(*_host_port(url)):
        return  # (a Redis Cluster here is a private one, gone at the end of the session)
    if url.startswith("nats://"):
        with ThreadPoolExecutor(1) as pool:  # its own event loop, whatever runs in this thread
            pool.submit(asyncio.run, _drop_nats_buckets(url, prefix)).result(timeout=30)
        return
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


async def _drop_nats_buckets(url: str, prefix: str) -> None:
    import nats

    client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        jsm = client.jetstream()
        for info in await jsm.streams_info():
            if info.config.name and info.config.name.startswith(f"KV_{prefix}_"):
                await jsm.delete_stream(info.config.name)
    finally:
        await client.close()


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[1].split("/", 1)[0].rpartition(":")
    return host, int(port)


@pytest.fixture(name="cluster_factory")
def cluster_factory_fixture(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(broker: str, apps: list[dict[str, Any]] | None = None, env: dict[str, str] | None = None,
             prefix: str | None = None) -> Cluster:
        cluster = Cluster(tmp_path / f"data{len(made)}", broker, apps or [APP], env=env or {})
        if prefix:
            cluster.prefix = prefix
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


# -- private broker processes (for outage tests: never the machine's shared Redis or NATS) ------


class PrivateBroker:
    """A redis-server or nats-server of our own on a free port, which the test may stop and restart."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0" if self.kind == "redis" else f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.kind == "redis":
            command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                       "--appendonly", "no", "--dir", str(self.workdir)]
        else:
            command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.workdir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{command[0]} did not start on port {self.port}")
            time.sleep(0.05)

    def freeze(self) -> None:
        """SIGSTOP: the broker keeps its state but answers nobody (a network partition, a long GC pause)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # (a frozen process dies only once it runs again)
            self.process.kill()
            self.process.wait()
        self.process = None


def private_broker_problem(kind: str) -> str | None:
    if kind == "redis":
        return None if shutil.which("redis-server") else "redis-server is not on PATH"
    if not os.path.exists(NATS_SERVER):
        return "nats-server is not installed"
    if importlib.util.find_spec("vask.broker.nats") is None:
        return "the NATS backend is not implemented yet (no vask.broker.nats module)"
    return None


# -- raw WebSocket clients -------------------------------------------------------------------


def _decode(raw: str | bytes) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(raw)
    data = frame["payload"] = frame.get("data")  # client events carry data as their sender sent it
    if isinstance(data, str):
        with contextlib.suppress(ValueError):
            frame["payload"] = json.loads(data)
    return frame


class Client:
    """One Pusher WebSocket connection that records every frame it receives."""

    def __init__(self, name: str, ws: ClientConnection) -> None:
        self.name = name
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.close_code: int | None = None
        self.closed = asyncio.Event()
        self.socket_id = ""
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, server: VaskServer, app: TestApp | None = None, name: str = "",
                   established: bool = True) -> Client:
        app = app or server.app
        ws = await connect(f"{server.ws_url}/app/{app.key}?protocol=7&client=py&version=1",
                           open_timeout=5, ping_interval=None, max_size=None)
        client = cls(name or f"client@{server.port}", ws)
        if established:
            frame = await client.wait_for("pusher:connection_established")
            client.socket_id = frame["payload"]["socket_id"]
        return client

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append(_decode(raw))
                self.changed.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            self.changed.set()

    def find(self, event: str | None = None, channel: str | None = None,
             where: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        return [f for f in self.frames if (event is None or f.get("event") == event)
                and (channel is None or f.get("channel") == channel) and (where is None or where(f))]

    async def wait_for(self, event: str | None = None, channel: str | None = None,
                       where: Callable[[dict[str, Any]], bool] | None = None, count: int = 1,
                       timeout: float = 5.0) -> dict[str, Any]:
        """The ``count``-th matching frame, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(event, channel, where)
            if len(found) >= count:
                return found[count - 1]
            left = deadline - time.monotonic()
            if left <= 0 or self.closed.is_set():
                raise AssertionError(f"{self.name}: no {count}x {event or 'frame'} on {channel} within "
                                     f"{timeout}s (closed={self.close_code}); got {self.frames[-10:]}")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def send(self, event: str, data: Any, channel: str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": data}
        if channel is not None:
            frame["channel"] = channel
        await self.ws.send(json.dumps(frame))

    async def subscribe(self, channel: str, signer: Any = None, user: dict[str, Any] | None = None,
                        wait: bool = True) -> dict[str, Any] | None:
        """Subscribe (authorized with pusher-http-python's ``authenticate`` for private/presence channels)."""
        data: dict[str, Any] = {"channel": channel}
        if channel.startswith(("private-", "presence-")):
            data.update(signer.authenticate(channel, self.socket_id, user))
        await self.send("pusher:subscribe", data)
        if wait:
            return await self.wait_for("pusher_internal:subscription_succeeded", channel)
        return None

    async def unsubscribe(self, channel: str) -> None:
        await self.send("pusher:unsubscribe", {"channel": channel})

    async def signin(self, signer: Any, user: dict[str, Any]) -> None:
        await self.send("pusher:signin", dict(signer.authenticate_user(self.socket_id, user)))
        await self.wait_for("pusher:signin_success")
        await self.subscribe(f"#server-to-user-{user['id']}")  # as pusher-js does after sign-in

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), 5)


async def open_clients(server: VaskServer, n: int, **kwargs: Any) -> list[Client]:
    return list(await asyncio.gather(*(Client.open(server, **kwargs) for _ in range(n))))


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 5.0, interval: float = 0.1) -> Any:
    """Await ``check()`` until it returns without an AssertionError (then return its value) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


async def call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking pusher-http-python call, off the event loop so the WebSocket readers keep reading."""
    return await asyncio.to_thread(function, *args, **kwargs)


async def close_all(clients: list[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
