"""Broker in process memory, for unit tests of cluster logic and for ``memory://<name>`` broker URLs.

A ``MemoryBus`` is one engine (one Redis or NATS server); every started ``MemoryBroker`` on it with the same
prefix hears every envelope published there, its own included, as the real brokers do. The bus also plays
the engine's failures: ``go_down`` (publishes fail fast, nothing is delivered, envelopes still in flight
are lost: delivery is at-most-once) and ``come_back`` (every broker is healthy again and calls its node's
``reconnected``). A named bus (``MemoryBus.named``) lives as long as the process, so only nodes in one
process can share it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

from vask import tasks
from vask.broker.base import BrokerUnavailable, Receiver, Reconnected

log = logging.getLogger("vask.broker")


class MemoryBus:
    """The brokers attached to one in-memory engine, and whether that engine is reachable."""

    _named: ClassVar[dict[str, MemoryBus]] = {}

    def __init__(self) -> None:
        self.brokers: list[MemoryBroker] = []  # started and not closed, in the order they started
        self.available = True

    @classmethod
    def named(cls, name: str) -> MemoryBus:
        """The process-wide bus called ``name`` (made on first use): what ``memory://<name>`` opens."""
        bus = cls._named.get(name)
        if bus is None:
            bus = cls._named[name] = cls()
        return bus

    def go_down(self) -> None:
        """Unreachable from now on: publishes raise BrokerUnavailable and undelivered envelopes are dropped."""
        if not self.available:
            return
        self.available = False
        for broker in list(self.brokers):
            broker._lost()

    def come_back(self) -> None:
        """Reachable again: every broker resubscribes and calls its ``reconnected`` callback (as a task: call
        this from the event loop)."""
        if self.available:
            return
        self.available = True
        for broker in list(self.brokers):
            broker._back()

    def _send(self, prefix: str, payload: bytes) -> None:
        # One call_soon per receiver, made in publish order: the loop runs callbacks first in, first out,
        # so every receiver sees one publisher's envelopes in the order they were published.
        loop = asyncio.get_running_loop()
        for broker in self.brokers:
            if broker.prefix == prefix:
                loop.call_soon(broker._deliver, broker.connection, payload)


class MemoryBroker:
    """A Broker on a MemoryBus (see vask.broker.base for the interface and its guarantees).

    ``healthy`` is True from ``start`` while the bus is up, False while it is down and after ``close``.
    Started while the bus is down, it returns at once (unhealthy) and counts the bus coming back as a
    reconnection, like the real brokers whose first connection comes late. Delivery is asynchronous (never
    inside ``publish``) and in publish order per publisher; ``reconnected`` runs as a task of its own,
    with delivery already resumed (as with NATS).
    """

    def __init__(self, bus: MemoryBus, prefix: str = "") -> None:
        self.bus = bus
        self.prefix = prefix
        self.healthy = False
        # Which subscription is current: bumped when the bus drops it or the broker closes, so envelopes
        # queued for an older subscription are dropped rather than delivered after an outage.
        self.connection = 0
        self.background: set[asyncio.Task[None]] = set()
        self._receive: Receiver | None = None
        self._reconnected: Reconnected | None = None

    async def start(self, receive: Receiver, reconnected: Reconnected) -> None:
        self._receive = receive
        self._reconnected = reconnected
        if self not in self.bus.brokers:
            self.bus.brokers.append(self)
        self.healthy = self.bus.available
        await asyncio.sleep(0)

    async def publish(self, payload: bytes) -> None:
        # Checked before and after the round trip: the bus may go down (or this broker close) meanwhile.
        if not self.healthy:
            raise BrokerUnavailable("memory broker unavailable")
        await asyncio.sleep(0)
        if not self.healthy or not self.bus.available:
            raise BrokerUnavailable("memory broker unavailable")
        self.bus._send(self.prefix, payload)

    async def close(self) -> None:
        self.healthy = False
        self.connection += 1
        if self in self.bus.brokers:
            self.bus.brokers.remove(self)
        for task in list(self.background):
            task.cancel()
        await asyncio.sleep(0)

    def _deliver(self, connection: int, payload: bytes) -> None:
        if connection != self.connection or self._receive is None:
            return  # sent to a subscription that is gone
        try:
            self._receive(payload)
        except Exception:
            log.exception("error handling a message from the memory bus")

    def _lost(self) -> None:
        self.healthy = False
        self.connection += 1

    def _back(self) -> None:
        self.healthy = True
        if self._reconnected is not None:
            tasks.spawn(self._reconnected(), "memory-reconnected", self.background)
