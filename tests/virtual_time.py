"""An event loop on a virtual clock: when nothing is ready to run it jumps to the next timer at once.

For tests of timing logic (node timeouts, webhook delays) that touch no real I/O: a 30-second node timeout
takes no real time, and the order of events is the order of their virtual times, whatever the machine's load.
The loop's ``time()`` is the clock; code under test reads it through the hub's clock and the replicator's.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
EPOCH = 1_800_000_000.0  # what wall() answers at virtual time 0


class _Selector(selectors.DefaultSelector):
    """Never waits: a wait of t seconds with nothing ready moves the virtual clock on by t."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self.now += timeout
        elif not ready and timeout is None:
            raise RuntimeError("virtual-time loop: nothing scheduled and nothing ready (a deadlock)")
        return ready


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.virtual = _Selector()
        super().__init__(self.virtual)

    def time(self) -> float:
        return self.virtual.now

    def wall(self) -> float:
        return EPOCH + self.virtual.now


def run(test: Callable[[VirtualLoop], Awaitable[T]]) -> T:
    """Run ``test(loop)`` to completion on a fresh virtual-time loop."""
    loop = VirtualLoop()
    try:
        return loop.run_until_complete(_call(test, loop))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _call(test: Callable[[VirtualLoop], Awaitable[T]], loop: VirtualLoop) -> T:
    return await test(loop)


def clock_of(loop: Any) -> Callable[[], float]:
    return loop.time  # type: ignore[no-any-return]
