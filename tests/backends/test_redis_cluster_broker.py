"""RedisBroker on a Redis Cluster (redis+cluster://): the bus is a sharded channel (SPUBLISH/SSUBSCRIBE) that
lives on one shard, every broker gets every message of its prefix, publishes fail fast while the cluster is
unreachable, and a broker started before its cluster joins it by itself. Uses private clusters
(tests/private_redis_cluster.py); skips with the reason when redis-server or redis-cli is missing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from broker_helpers import Node, eventually
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from private_redis_cluster import PrivateRedisCluster, problem
from vask.broker.base import BrokerUnavailable
from vask.broker.redis import RedisBroker, parse_url

pytestmark = pytest.mark.asyncio(loop_scope="function")


Started = Callable[[str, str], Awaitable[tuple[RedisBroker, Node]]]


@pytest_asyncio.fixture
async def started() -> AsyncIterator[Started]:
    brokers: list[RedisBroker] = []

    async def start(url: str, prefix: str) -> tuple[RedisBroker, Node]:
        broker, node = RedisBroker(url, prefix), Node()
        await broker.start(node.receive, node.reconnected)
        brokers.append(broker)
        return broker, node

    yield start
    for broker in brokers:
        await broker.close()


async def shard_channels(url: str) -> dict[int, list[bytes]]:
    """PUBSUB SHARDCHANNELS of every node of the cluster, by port."""
    cluster = RedisCluster.from_url(parse_url(url)[0])
    await cluster.initialize()
    try:
        out = {}
        for node in cluster.get_nodes():
            client = Redis(host=node.host, port=node.port)
            out[node.port] = list(await client.execute_command("PUBSUB", "SHARDCHANNELS"))
            await client.aclose()
        return out
    finally:
        await cluster.aclose()


async def test_every_broker_gets_every_message_on_one_shard_channel(redis_cluster: str, started: Started) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    (first, one), (second, two) = await started(redis_cluster, prefix), await started(redis_cluster, prefix)
    _, stranger = await started(redis_cluster, f"{prefix}x")  # another deployment on the same cluster
    assert first.healthy and second.healthy
    for i in range(20):
        await (first if i % 2 else second).publish(b"m%d" % i)
    expected = [b"m%d" % i for i in range(20)]
    await eventually(lambda: len(one.received) == 20 and len(two.received) == 20)
    assert one.received == two.received == expected  # each publisher's order kept, nothing twice
    assert stranger.received == []
    # the bus is one sharded channel, held by exactly one shard, not broadcast to every node
    channels = await shard_channels(redis_cluster)
    holders = [port for port, names in channels.items() if f"{prefix}:bus".encode() in names]
    assert len(channels) == 3 and len(holders) == 1


async def test_unreachable_cluster_fails_fast_and_is_joined_when_it_starts(tmp_path: Path, started: Started) -> None:
    reason = problem()
    if reason:
        pytest.skip(reason)
    cluster = PrivateRedisCluster(tmp_path)
    try:
        begin = time.monotonic()
        broker, node = await started(cluster.url, "late")  # nothing listens yet
        with pytest.raises(BrokerUnavailable):
            await broker.publish(b"lost")
        assert "connect" in broker.last_error.lower()  # the reason, for the start-up warning
        assert time.monotonic() - begin < 8
        await asyncio.to_thread(cluster.start)
        await eventually(lambda: broker.healthy, timeout=20)
        await broker.publish(b"hello")
        await eventually(lambda: node.received == [b"hello"])
    finally:
        cluster.stop()
