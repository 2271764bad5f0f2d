"""Real server nodes run inside the test's event loop (``vask.server.main.serve``), so a test can open a
console viewer on a node's feed and read its stats, while clients talk to it over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from vask.config import Settings
from vask.console.events import ConsoleEvent
from vask.console.feed import Viewer
from vask.server.main import serve
from vask.server.node import ServerState


@contextlib.asynccontextmanager
async def running(**settings: Any) -> AsyncIterator[tuple[ServerState, int]]:
    loop = asyncio.get_running_loop()
    started: asyncio.Future[int] = loop.create_future()
    ready: asyncio.Future[ServerState] = loop.create_future()
    stop = asyncio.Event()
    # admin_port 0: the dashboard that every node starts binds a free port, never the fixed 9601 of a
    # developer's running `vask serve` or of a parallel test.
    defaults = {"port": 0, "admin_port": 0, "create_default_app": False}
    task = asyncio.create_task(serve(Settings(**{**defaults, **settings}), started,
                                     stop=stop, state_ready=ready))
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # serve() failed to start: raise its error
    assert ready in done, "the node did not start within 30 s"
    try:
        yield ready.result(), started.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def collect(viewer: Viewer, until: Any, timeout: float = 10.0) -> list[ConsoleEvent]:
    """Events from ``viewer`` until ``until(events)`` holds (AssertionError with what came, on timeout)."""
    events: list[ConsoleEvent] = []

    async def read() -> None:
        async for event in viewer:
            events.append(event)
            if until(events):
                return

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise AssertionError(f"not seen in {timeout} s; got {[(e.type, e.channel) for e in events]}") from None
    return events


def types(events: list[ConsoleEvent]) -> list[str]:
    return [e.type for e in events]

