"""One contract for every Broker (vask.broker.base): MemoryBroker (vask.broker.memory), RedisBroker on the
machine's Redis (127.0.0.1:6379) and NatsBroker on the machine's NATS (127.0.0.1:4222), each test with a
prefix (or, for memory, a bus) of its own. Engine outages run on private servers the test may kill and
restart (redis-server, nats-server), never on the shared ones; for memory the bus goes down and comes back.
A service or server binary that is not there skips its half with the reason; the memory half always runs,
so the in-memory broker that cluster unit tests use is held to the same contract as the real ones.

Engine-specific behaviour stays in test_nats_broker.py and test_redis_cluster_broker.py.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from broker_helpers import Node, eventually, publish_until_received

from private_nats import NATS_SERVER, NATS_URL, REDIS_URL, PrivateNats, PrivateRedis, free_port, reachable
from vask.broker.base import Broker, BrokerUnavailable, open_broker
from vask.broker.memory import MemoryBroker, MemoryBus

pytestmark = pytest.mark.asyncio(loop_scope="function")

KINDS = ["memory", "redis", "nats"]
SHARED = {"redis": ("127.0.0.1", 6379), "nats": ("127.0.0.1", 4222)}


@dataclass
class Backend:
    """How a test reaches one kind of broker: ``open(prefix)`` on the shared engine (a bus for memory)."""

    kind: str
    bus: MemoryBus = field(default_factory=MemoryBus)  # memory only
    brokers: list[Broker] = field(default_factory=list)

    def open(self, prefix: str, url: str | None = None) -> Broker:
        if self.kind == "memory":
            return MemoryBroker(self.bus, prefix)
        shared = REDIS_URL if self.kind == "redis" else NATS_URL
        return open_broker(url or shared, prefix)

    async def start(self, prefix: str, url: str | None = None) -> tuple[Broker, Node]:
        broker, node = self.open(prefix, url), Node()
        await broker.start(node.receive, node.reconnected)
        self.brokers.append(broker)
        return broker, node

    def unreachable_url(self) -> str:
        """A URL nothing answers on (redis and nats; for memory the test takes the bus down instead)."""
        return f"redis://127.0.0.1:{free_port()}/0" if self.kind == "redis" else f"nats://127.0.0.1:{free_port()}"


@pytest_asyncio.fixture(params=KINDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    kind: str = request.param
    if kind in SHARED and not reachable(*SHARED[kind]):
        pytest.skip(f"{kind} is not reachable on {SHARED[kind][0]}:{SHARED[kind][1]}")
    made = Backend(kind)
    yield made
    for broker in made.brokers:
        await broker.close()


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


# -- delivery ------------------------------------------------------------------------------


async def test_every_broker_gets_every_message_of_its_prefix(backend: Backend, prefix: str) -> None:
    a, node_a = await backend.start(prefix)
    b, node_b = await backend.start(prefix)
    _, node_other = await backend.start(prefix + "x")  # another deployment on the same engine
    assert a.healthy and b.healthy
    await a.publish(b"from a")
    await b.publish(b"from b")
    await eventually(lambda: len(node_a.received) == 2 and len(node_b.received) == 2)
    # (Two publishers: no order between them, only per publisher.)
    assert sorted(node_a.received) == sorted(node_b.received) == [b"from a", b"from b"]
    await asyncio.sleep(0.2)
    assert node_other.received == []
    assert len(node_a.received) == len(node_b.received) == 2  # nothing twice
    assert node_a.reconnects == node_b.reconnects == 0  # a first connection is not a reconnection


async def test_order_is_kept_for_one_publisher(backend: Backend, prefix: str) -> None:
    a, node_a = await backend.start(prefix)
    _, node_b = await backend.start(prefix)
    sent = [str(i).encode() for i in range(1000)]
    for payload in sent:
        await a.publish(payload)
    await eventually(lambda: len(node_a.received) == len(node_b.received) == len(sent))
    assert node_a.received == node_b.received == sent  # its own messages too, in order


async def test_close_stops_delivery(backend: Backend, prefix: str) -> None:
    a, node_a = await backend.start(prefix)
    b, node_b = await backend.start(prefix)
    # (retried: delivery is at-most-once, and this test is about what happens after close)
    await publish_until_received(a, node_b, b"before")
    await b.close()
    await a.publish(b"after")
    await eventually(lambda: b"after" in node_a.received)
    await asyncio.sleep(0.2)  # time for a late delivery to show up
    assert set(node_b.received) == {b"before"}


# -- outages -------------------------------------------------------------------------------


async def test_unreachable_engine_fails_fast(backend: Backend) -> None:
    """start() returns (the real brokers give up waiting after about 5 s) and publishes fail at once."""
    begin = time.monotonic()
    if backend.kind == "memory":
        backend.bus.go_down()
        broker, node = await backend.start("nobody")
    else:
        broker, node = await backend.start("nobody", backend.unreachable_url())
    assert time.monotonic() - begin < 7
    assert not broker.healthy
    begin = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await broker.publish(b"lost")
    assert time.monotonic() - begin < 0.1
    begin = time.monotonic()
    await broker.close()
    assert time.monotonic() - begin < 2
    assert node.received == []


def private_engine(kind: str, workdir: Path) -> PrivateRedis | PrivateNats:
    if kind == "redis":
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not on PATH (Debian package redis-server)")
        return PrivateRedis(workdir)
    if not Path(NATS_SERVER).exists():
        pytest.skip("nats-server is not installed")
    return PrivateNats(workdir)


async def test_reconnected_after_the_engine_comes_back(backend: Backend, tmp_path: Path) -> None:
    """While the engine is away publishes fail fast and nothing is delivered; once it is back every broker
    is healthy again, has called ``reconnected`` once, and hears the others again."""
    server = None if backend.kind == "memory" else private_engine(backend.kind, tmp_path / "engine")
    url = None
    if server is not None:
        server.start()
        url = server.url
    try:
        a, node_a = await backend.start("restart", url)
        b, node_b = await backend.start("restart", url)
        # (a fresh private server may answer after start() stopped waiting: a late first connection, which
        # counts as a reconnection; what is published before b subscribed reaches nobody: at-most-once)
        await eventually(lambda: a.healthy and b.healthy)
        await publish_until_received(a, node_b, b"before")
        seen_a, seen_b = node_a.reconnects, node_b.reconnects

        if server is not None:
            server.stop()
        else:
            backend.bus.go_down()
        await eventually(lambda: not a.healthy and not b.healthy, timeout=5)
        begin = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await a.publish(b"during")
        assert time.monotonic() - begin < 0.1

        if server is not None:
            server.start()
        else:
            backend.bus.come_back()
        await eventually(lambda: a.healthy and b.healthy)
        await eventually(lambda: node_a.reconnects == seen_a + 1 and node_b.reconnects == seen_b + 1)
        await publish_until_received(a, node_b, b"after")  # resubscribed: b hears a again
        await publish_until_received(b, node_a, b"back")
        assert b"during" not in node_b.received
        assert node_a.reconnects == seen_a + 1 and node_b.reconnects == seen_b + 1  # once per outage
    finally:
        if server is not None:
            server.stop()


# -- memory only: the simulated engine -----------------------------------------------------


async def started_memory(bus: MemoryBus, prefix: str = "p") -> tuple[MemoryBroker, Node]:
    broker, node = MemoryBroker(bus, prefix), Node()
    await broker.start(node.receive, node.reconnected)
    return broker, node


async def test_memory_delivery_is_asynchronous_and_in_flight_envelopes_die_with_the_bus() -> None:
    bus = MemoryBus()
    a, node = await started_memory(bus)
    await a.publish(b"one")
    assert node.received == []  # never inside publish: the receiver runs from the loop
    await asyncio.sleep(0)
    assert node.received == [b"one"]
    await a.publish(b"in flight")
    bus.go_down()  # before the loop delivered it
    bus.come_back()
    await asyncio.sleep(0.01)
    assert node.received == [b"one"]  # at-most-once: lost, not delivered late


async def test_memory_bus_down_and_back_is_idempotent_and_reconnects_once() -> None:
    bus = MemoryBus()
    a, node = await started_memory(bus)
    bus.come_back()  # already up: nothing happens
    await asyncio.sleep(0)
    assert node.reconnects == 0
    bus.go_down()
    bus.go_down()
    assert not a.healthy and not bus.available
    bus.come_back()
    bus.come_back()
    await asyncio.sleep(0)
    assert a.healthy and node.reconnects == 1


async def test_memory_broker_started_while_the_bus_is_down_joins_when_it_comes_back() -> None:
    bus = MemoryBus()
    bus.go_down()
    a, node = await started_memory(bus)
    assert not a.healthy
    bus.come_back()
    await asyncio.sleep(0)
    assert a.healthy and node.reconnects == 1  # a late first connection, as with the real brokers
    await a.publish(b"hello")
    await asyncio.sleep(0)
    assert node.received == [b"hello"]


async def test_memory_broker_after_close() -> None:
    bus = MemoryBus()
    a, node = await started_memory(bus)
    await a.close()
    assert not a.healthy and bus.brokers == []
    with pytest.raises(BrokerUnavailable):
        await a.publish(b"x")
    bus.go_down()
    bus.come_back()
    await asyncio.sleep(0)
    assert node.reconnects == 0  # a closed broker is not brought back


async def test_memory_receiver_error_is_logged_and_others_still_receive(caplog: pytest.LogCaptureFixture) -> None:
    bus = MemoryBus()

    def broken(payload: bytes) -> None:
        raise RuntimeError("boom")

    async def nothing() -> None:
        return None

    failing = MemoryBroker(bus, "p")
    await failing.start(broken, nothing)
    a, node = await started_memory(bus)
    with caplog.at_level(logging.ERROR, logger="vask.broker"):
        await a.publish(b"one")
        await a.publish(b"two")
        await asyncio.sleep(0)
    assert node.received == [b"one", b"two"]
    assert "error handling a message from the memory bus" in caplog.text


async def test_open_broker_memory_url_is_one_bus_per_name() -> None:
    name = f"t{uuid.uuid4().hex[:12]}"
    a, b = open_broker(f"memory://{name}", "vask"), open_broker(f"memory://{name}", "vask")
    console = open_broker(f"memory://{name}", "vask_console")  # another prefix on the same bus
    stranger = open_broker(f"memory://{name}x", "vask")
    assert isinstance(a, MemoryBroker) and isinstance(b, MemoryBroker) and a.bus is b.bus is MemoryBus.named(name)
    assert isinstance(stranger, MemoryBroker) and stranger.bus is not a.bus
    nodes = [Node() for _ in range(4)]
    brokers: list[Broker] = [a, b, console, stranger]
    for broker, node in zip(brokers, nodes, strict=True):
        await broker.start(node.receive, node.reconnected)
    try:
        await a.publish(b"hi")
        await asyncio.sleep(0)
        assert [node.received for node in nodes] == [[b"hi"], [b"hi"], [], []]
    finally:
        for broker in brokers:
            await broker.close()

