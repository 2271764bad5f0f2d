"""Health as load balancers and orchestrators read it: /live, /ready, /accept-traffic and /usage.

``/live`` says the process answers. ``/ready`` says this node can do its job: 503 while draining, while the app
store does not answer, or while the broker of a cluster is unreachable (publishes would get 503 too).
``/accept-traffic`` (Soketi's) adds memory: 503 above ``accept_traffic_memory_threshold`` percent of the memory
limit. ``/usage`` reports that memory as Soketi does: ``{"memory": {"free", "used", "total", "percent"}}``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vask.apps.base import AppStore
    from vask.server.node import ServerState, StoreHealth

log = logging.getLogger("vask.health")

PROBE_ID = "~vask-ready-probe"  # no app can have it (ids start with a letter or digit): a cheap indexed miss
PROBE_TIMEOUT = 5.0


def not_ready(state: ServerState) -> str | None:
    """Why this node is not ready, or None when it is."""
    if state.shutting_down:
        return "Shutting down"
    if not state.store_health.ok:
        return f"App store unreachable: {state.store_health.problem}"
    if state.cluster is not None and not state.cluster.healthy:
        return "Broker unavailable: this node cannot reach the other nodes"
    return None


async def watch_store(store: AppStore, health: StoreHealth, interval: float) -> None:
    """Probe the app store every ``interval`` seconds; log each change of state once."""
    while True:
        try:
            await asyncio.wait_for(asyncio.to_thread(store.get_by_id, PROBE_ID), PROBE_TIMEOUT)
        except Exception as exc:  # any failure: the store cannot serve look-ups now
            problem = str(exc) or type(exc).__name__
            if health.ok:
                log.warning("the app store does not answer (%s): /ready answers 503 until it does", problem)
            health.ok, health.problem = False, problem.splitlines()[0][:200]
        else:
            if not health.ok:
                log.warning("the app store answers again: /ready is 200")
            health.ok, health.problem = True, ""
        await asyncio.sleep(interval)


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def memory_limit() -> int:
    """The memory this process may use: the cgroup limit (containers), else the machine's physical memory."""
    total = 0
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 0
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        limit = _read_int(path)
        if limit is not None and 0 < limit < (total or limit + 1):
            return limit
    return total


def memory_used() -> int:
    """Resident memory of this process in bytes."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the peak: the best there is without /proc
        return int(peak if sys.platform == "darwin" else peak * 1024)


def usage() -> dict[str, dict[str, float]]:
    used, total = memory_used(), memory_limit()
    return {"memory": {"free": max(total - used, 0), "used": used, "total": total,
                       "percent": round(used * 100 / total, 2) if total else 0.0}}


def refuse_traffic(state: ServerState) -> str | None:
    """Why new traffic should go elsewhere (Soketi's /accept-traffic), or None."""
    if state.shutting_down:
        return "The server is shutting down: choose another server"
    percent = usage()["memory"]["percent"]
    if percent > state.settings.accept_traffic_memory_threshold:
        return (f"Low on memory ({percent:.0f}% of the limit, threshold "
                f"{state.settings.accept_traffic_memory_threshold:g}%): choose another server")
    return None
