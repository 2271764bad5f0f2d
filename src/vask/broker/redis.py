"""Redis pub/sub broker. Owns resubscription: redis-py does not reliably resubscribe after a reset.

``redis+cluster://`` (or ``rediss+cluster://``) URLs name a Redis Cluster: the bus is then a sharded channel
(SPUBLISH/SSUBSCRIBE), which stays on the shard that owns its slot instead of being copied to every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from vask import tasks
from vask.broker.base import BrokerUnavailable, Receiver, Reconnected

log = logging.getLogger("vask.broker")

# What Redis being away looks like; a cluster client raises RedisClusterException (not a RedisError) when it
# cannot read the slot map.
ERRORS = (RedisError, RedisClusterException, OSError)


def parse_url(url: str) -> tuple[str, bool]:
    """The URL redis-py understands, and whether it names a Redis Cluster."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower().endswith("+cluster"):
        return f"{scheme[: -len('+cluster')]}://{rest}", True
    return url, False


async def connect(url: str, **options: Any) -> Any:
    """A started client for ``url``: a plain Redis client, or a cluster client that has read the slot map."""
    plain, cluster = parse_url(url)
    if not cluster:
        return aioredis.from_url(plain, **options)
    client = RedisCluster.from_url(plain, **options)
    try:
        await client.initialize()
    except BaseException:
        await client.aclose()
        raise
    return client


class RedisBroker:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.cluster = parse_url(url)[1]
        self.channel = f"{prefix}:bus"
        self.healthy = False
        self.last_error = ""  # why the last attempt failed: says "cluster mode is not enabled" and the like
        self.client: Any = None
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self, receive: Receiver, reconnected: Reconnected) -> None:
        self.task = tasks.spawn(self._listen(receive, reconnected), "redis-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), 5)
        if not self.healthy:
            log.warning("Redis broker %s not reachable yet (%s); retrying in the background", self.url,
                        self.last_error or "no answer")

    async def _listen(self, receive: Receiver, reconnected: Reconnected) -> None:
        delay = 0.2
        first = True
        while True:
            pubsub = conn = None
            try:
                if self.client is None:  # a cluster client reads the slot map first, so this can fail too
                    self.client = await connect(self.url, socket_timeout=2, socket_connect_timeout=2)
                conn = await connect(self.url, socket_connect_timeout=2)
                pubsub = conn.pubsub(ignore_subscribe_messages=True)
                if self.cluster:
                    await pubsub.ssubscribe(self.channel)
                else:
                    await pubsub.subscribe(self.channel)
                await self.client.ping()
                self.healthy = True
                self.ready.set()
                delay = 0.2
                if not first:
                    log.info("Redis broker back: resubscribed")
                    await reconnected()
                first = False
                read = pubsub.get_sharded_message if self.cluster else pubsub.get_message
                while True:
                    message = await read(timeout=1.0)
                    if message is not None and message["type"] in ("message", "smessage"):
                        receive(message["data"])
                    elif message is None:
                        await pubsub.ping()  # notices a dead connection even when the bus is quiet
            except asyncio.CancelledError:
                raise
            except ERRORS as exc:
                self.last_error = str(exc)
                if self.healthy:
                    log.warning("Redis broker lost: %s", exc)
                self.healthy = False
                first = False
            except Exception:
                log.exception("unexpected error in the Redis broker")
                self.healthy = False
                first = False
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.aclose()
            await asyncio.sleep(delay + random.random() * delay)
            # At most 2 s between attempts: delivery must be back within a few seconds of Redis returning
            # (RELIABILITY.md), and a refused connection costs Redis nothing.
            delay = min(delay * 2, 1.0)

    async def publish(self, payload: bytes) -> None:
        if not self.healthy:
            raise BrokerUnavailable("Redis broker unavailable")
        try:
            if self.cluster:
                await self.client.spublish(self.channel, payload)
            else:
                await self.client.publish(self.channel, payload)
        except ERRORS as exc:
            self.healthy = False
            raise BrokerUnavailable(str(exc)) from exc

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.client is not None:
            await self.client.aclose()
