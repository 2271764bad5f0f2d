"""What the broker tests share: a stand-in for the node a broker serves, and a polling wait."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from vask.broker.base import Broker, BrokerUnavailable


class Node:
    """What a cluster node hands the broker: a receiver and a reconnected callback, both recorded."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.reconnects = 0
        self.arrived = asyncio.Event()

    def receive(self, payload: bytes) -> None:
        self.received.append(payload)
        self.arrived.set()

    async def reconnected(self) -> None:
        self.reconnects += 1


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def publish_until_received(broker: Broker, node: Node, payload: bytes, timeout: float = 10.0) -> None:
    """Right after a reconnect a publish may still race the resubscription: retry until one arrives."""
    deadline = time.monotonic() + timeout
    while payload not in node.received:
        assert time.monotonic() < deadline, "message never arrived"
        with contextlib.suppress(BrokerUnavailable):
            await broker.publish(payload)
        await asyncio.sleep(0.2)
