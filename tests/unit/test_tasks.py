"""vask.tasks: background tasks are kept while they run and a failure is logged, not lost."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from vask import tasks

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_a_running_task_is_kept_until_it_finishes() -> None:
    gate = asyncio.Event()
    done: list[int] = []

    async def work() -> None:
        await gate.wait()
        done.append(1)

    before = tasks.running()
    tasks.spawn(work(), "kept")
    gc.collect()  # the loop's weak reference alone would let this collect the task
    assert tasks.running() == before + 1
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert done == [1]
    assert tasks.running() == before


async def test_a_failure_is_logged_with_the_task_name(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="vask.tasks"):
        task = tasks.spawn(broken(), "broken-job")
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert any("broken-job" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_a_cancelled_task_is_not_reported(caplog: pytest.LogCaptureFixture) -> None:
    own: set[asyncio.Task[object]] = set()
    with caplog.at_level(logging.ERROR, logger="vask.tasks"):
        task = tasks.spawn(asyncio.sleep(10), "sleeper", own)
        assert task in own
        task.cancel()
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert not own
    assert not caplog.records
