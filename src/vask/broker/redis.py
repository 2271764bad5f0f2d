"""Redis pub/sub broker. Owns resubscription: redis-py does not reliably resubscribe after a reset."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from vask.broker.base import BrokerUnavailable, Receiver, Reconnected

log = logging.getLogger("vask.broker")


class RedisBroker:
    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.channel = f"{prefix}:bus"
        self.healthy = False
        self.client: Any = None
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self, receive: Receiver, reconnected: Reconnected) -> None:
        self.client = aioredis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        self.task = asyncio.create_task(self._listen(receive, reconnected))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.ready.wait(), 5)
        if not self.healthy:
            log.warning("Redis broker %s not reachable yet; retrying in the background", self.url)

    async def _listen(self, receive: Receiver, reconnected: Reconnected) -> None:
        delay = 0.2
        first = True
        while True:
            pubsub = None
            try:
                conn = aioredis.from_url(self.url, socket_connect_timeout=2)
                pubsub = conn.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                await self.client.ping()
                self.healthy = True
                self.ready.set()
                delay = 0.2
                if not first:
                    log.info("Redis broker back: resubscribed")
                    await reconnected()
                first = False
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        receive(message["data"])
                    elif message is None:
                        await pubsub.ping()  # notices a dead connection even when the bus is quiet
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
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
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay + random.random() * delay)
            delay = min(delay * 2, 2.0)

    async def publish(self, payload: bytes) -> None:
        if not self.healthy:
            raise BrokerUnavailable("Redis broker unavailable")
        try:
            await self.client.publish(self.channel, payload)
        except (RedisError, OSError) as exc:
            self.healthy = False
            raise BrokerUnavailable(str(exc)) from exc

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.client is not None:
            await self.client.aclose()
