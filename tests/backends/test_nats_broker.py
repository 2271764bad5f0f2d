"""NatsBroker on the machine's real NATS (and on nats-servers of the tests' own for outages): every broker
receives every message on its prefix, its own included; publishes fail fast while NATS is away; the broker
comes back by itself and tells the node. Skips with the reason when NATS is not there; nothing is faked.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from broker_helpers import Node, eventually, publish_until_received

from private_nats import NATS_SERVER, NATS_URL, PrivateNats, free_port, reachable
from vask.broker.base import BrokerUnavailable
from vask.broker.nats import NatsBroker

pytestmark = pytest.mark.asyncio(loop_scope="function")

needs_server = pytest.mark.skipif(not Path(NATS_SERVER).exists(), reason="nats-server is not installed")


@pytest_asyncio.fixture
async def started() -> AsyncIterator[Callable[..., Awaitable[tuple[NatsBroker, Node]]]]:
    brokers: list[NatsBroker] = []

    async def start(url: str = NATS_URL, prefix: str = "") -> tuple[NatsBroker, Node]:
        broker, node = NatsBroker(url, prefix), Node()
        await broker.start(node.receive, node.reconnected)
        brokers.append(broker)
        return broker, node

    yield start
    for broker in brokers:
        await broker.close()


@pytest.fixture
def prefix() -> str:
    if not reachable("127.0.0.1", 4222):
        pytest.skip("NATS is not reachable on 127.0.0.1:4222")
    return f"t{uuid.uuid4().hex[:12]}"


async def test_every_broker_gets_every_message_of_its_prefix(started: Callable[..., Awaitable[tuple[NatsBroker, Node]]],
                                                              prefix: str) -> None:
    a, node_a = await started(prefix=prefix)
    b, node_b = await started(prefix=prefix)
    other, node_other = await started(prefix=prefix + "x")
    assert a.healthy and b.healthy and other.healthy
    await a.publish(b"from a")
    await b.publish(b"from b")
    await eventually(lambda: len(node_a.received) == 2 and len(node_b.received) == 2)
    # (Two publishers on two connections: no order between them, only per publisher.)
    assert sorted(node_a.received) == sorted(node_b.received) == [b"from a", b"from b"]
    await asyncio.sleep(0.2)
    assert node_other.received == []  # another deployment's prefix
    assert node_a.reconnects == node_b.reconnects == 0  # a first connection is not a reconnection


async def test_order_is_kept_for_one_publisher(started: Callable[..., Awaitable[tuple[NatsBroker, Node]]],
                                               prefix: str) -> None:
    a, _ = await started(prefix=prefix)
    _, node_b = await started(prefix=prefix)
    sent = [str(i).encode() for i in range(2000)]
    for payload in sent:
        await a.publish(payload)
    await eventually(lambda: len(node_b.received) == len(sent))
    assert node_b.received == sent


async def test_unreachable_nats_fails_fast(started: Callable[..., Awaitable[tuple[NatsBroker, Node]]]) -> None:
    begin = time.monotonic()
    broker, _ = await started(url=f"nats://127.0.0.1:{free_port()}", prefix="nobody")
    assert time.monotonic() - begin < 7  # start() gives up waiting after about 5 s
    assert not broker.healthy
    begin = time.monotonic()
    with pytest.raises(BrokerUnavailable):
        await broker.publish(b"lost")
    assert time.monotonic() - begin < 0.1
    begin = time.monotonic()
    await broker.close()
    assert time.monotonic() - begin < 2


@needs_server
async def test_connects_when_nats_starts_late(started: Callable[..., Awaitable[tuple[NatsBroker, Node]]],
                                              tmp_path: Path) -> None:
    server = PrivateNats(tmp_path / "js")
    try:
        broker, node = await started(url=server.url, prefix="late")
        assert not broker.healthy
        server.start()
        await eventually(lambda: broker.healthy)
        await eventually(lambda: node.reconnects == 1)  # the node re-publishes what it could not before
        await publish_until_received(broker, node, b"hello")
    finally:
        server.stop()


@needs_server
async def test_nats_restart(started: Callable[..., Awaitable[tuple[NatsBroker, Node]]], tmp_path: Path) -> None:
    server = PrivateNats(tmp_path / "js")
    server.start()
    try:
        a, node_a = await started(url=server.url, prefix="restart")
        b, node_b = await started(url=server.url, prefix="restart")
        # a fresh nats-server may answer after start() stopped waiting: b subscribes in the background then,
        # and what a publishes before that reaches nobody (core NATS is at-most-once)
        await eventually(lambda: a.healthy and b.healthy)
        await publish_until_received(a, node_b, b"before")

        seen_a, seen_b = node_a.reconnects, node_b.reconnects  # (a late first connection counts as one)
        server.stop()
        await eventually(lambda: not a.healthy and not b.healthy, timeout=5)
        begin = time.monotonic()
        with pytest.raises(BrokerUnavailable):
            await a.publish(b"during")
        assert time.monotonic() - begin < 0.1

        server.start()
        await eventually(lambda: a.healthy and b.healthy)
        await eventually(lambda: node_a.reconnects == seen_a + 1 and node_b.reconnects == seen_b + 1)
        await publish_until_received(a, node_b, b"after")  # resubscribed: b hears a again
        assert b"during" not in node_b.received
    finally:
        server.stop()


async def test_a_deliberate_close_is_not_reported_as_a_lost_broker(
        started: Callable[..., Awaitable[tuple[NatsBroker, Node]]], prefix: str,
        caplog: pytest.LogCaptureFixture) -> None:
    broker, _ = await started(prefix=prefix)
    await broker.close()
    assert not broker.healthy
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
