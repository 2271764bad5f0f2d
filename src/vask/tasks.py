"""Background tasks that are kept until they finish and whose failures are logged.

The event loop holds tasks only weakly: a task nobody keeps can be garbage-collected mid-flight, and an
exception in one nobody awaits is reported, if ever, only when it is collected. ``spawn`` keeps every task in
a set until it is done and logs how it failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

log = logging.getLogger("vask.tasks")

_running: set[asyncio.Task[Any]] = set()


def spawn(work: Awaitable[Any], name: str, keep: set[asyncio.Task[Any]] | None = None) -> asyncio.Task[Any]:
    """Run ``work`` in the background; ``keep`` (default: a module-wide set) holds it until it is done."""
    task = asyncio.ensure_future(work)
    task.set_name(name)
    held = _running if keep is None else keep
    held.add(task)
    task.add_done_callback(held.discard)
    task.add_done_callback(_report)
    return task


def _report(task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s failed", task.get_name(), exc_info=exc)


def running() -> int:
    """How many module-wide tasks are still running (the soak checks that it does not grow)."""
    return len(_running)
