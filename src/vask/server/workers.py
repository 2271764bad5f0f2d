"""`vask serve --workers N`: N server processes share one port (SO_REUSEPORT) and one broker.

Each worker is a full cluster node with its own id, so presence, counts and quotas stay correct across
workers exactly as across machines. The parent only starts, restarts and stops them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

from vask.config import Settings

Run = Callable[[Settings], None]  # vask.server.main.run, passed in (pickled by name): no import of main here


def _child(data: dict[str, Any], index: int, run: Run) -> None:
    settings = Settings.model_validate(data)
    update: dict[str, Any] = {}
    if settings.node_id:
        update["node_id"] = f"{settings.node_id}-w{index}"
    if settings.admin_port:
        # A port of its own per worker: /metrics counts one process, so each must be reachable for scraping.
        update["admin_port"] = settings.admin_port + index
    settings = settings.model_copy(update=update)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent turns Ctrl-C into one SIGTERM per worker
    run(settings)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def supervise(settings: Settings, run: Run) -> None:
    if settings.port == 0:
        settings = settings.model_copy(update={"port": _free_port(settings.host)})
    context = multiprocessing.get_context("spawn")
    data = settings.model_dump(mode="json")
    stopping = False

    def start(index: int) -> Any:
        process = context.Process(target=_child, args=(data, index, run), name=f"vask-worker-{index}")
        process.start()
        return process

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workers = [start(i) for i in range(settings.workers)]
    print(f"Vask supervisor {os.getpid()}: {settings.workers} workers on port {settings.port}", flush=True)
    # An HTTP-transport session lives in one worker, and the kernel spreads new TCP connections over all of them.
    print("NOTE: pusher-js' HTTP fallback (xhr_streaming/xhr_polling) needs every request of a session on the "
          "same process; with --workers > 1 it is unreliable (see docs/http-fallback.md).", flush=True)
    while not stopping:
        time.sleep(0.2)
        for index, process in enumerate(workers):
            if not process.is_alive() and not stopping:
                print(f"worker {index} exited with {process.exitcode}; restarting it", file=sys.stderr, flush=True)
                workers[index] = start(index)
    for process in workers:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + settings.shutdown_grace + 5
    for process in workers:
        process.join(max(deadline - time.monotonic(), 0.1))
        if process.is_alive():
            process.kill()
