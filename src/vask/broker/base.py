"""The Broker interface: every node publishes envelopes and receives every node's envelopes, its own included.

Delivery is at-most-once, as with Pusher itself. ``healthy`` is False while the engine is unreachable; the
broker reconnects and resubscribes by itself and then calls ``on_reconnect`` so the node can re-publish state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Receiver = Callable[[bytes], None]
Reconnected = Callable[[], Awaitable[None]]


class BrokerUnavailable(Exception):
    """The broker is unreachable: publishes fail fast so the caller can answer 503."""


class Broker(Protocol):
    healthy: bool

    async def start(self, receive: Receiver, reconnected: Reconnected) -> None: ...

    async def publish(self, payload: bytes) -> None: ...

    async def close(self) -> None: ...


def open_broker(url: str, prefix: str) -> Broker:
    if url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")):
        from vask.broker.redis import RedisBroker

        return RedisBroker(url, prefix)
    if url.startswith(("nats://", "tls://")):
        from vask.broker.nats import NatsBroker

        return NatsBroker(url, prefix)
    if url.startswith("memory://"):
        from vask.broker.memory import MemoryBroker, MemoryBus

        # One bus per name for the whole process: only nodes running in this process can share it.
        return MemoryBroker(MemoryBus.named(url.removeprefix("memory://")), prefix)
    raise ValueError(f"Unsupported broker URL {url!r}: use redis://host:port, redis+cluster://host:port, "
                     "nats://host:port or memory://name")
