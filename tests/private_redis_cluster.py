"""A Redis Cluster of a test's own: three redis-server masters in cluster mode on free ports.

The machine's Redis is standalone, so the Redis Cluster tests (sharded pub/sub, keys on several shards)
start this one; it needs redis-server and redis-cli (Debian's redis-server package has both).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

from private_nats import free_port

MASTERS = 3


def problem() -> str | None:
    """Why a private Redis Cluster cannot start here, or None."""
    missing = [tool for tool in ("redis-server", "redis-cli") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not on PATH (Debian package redis-server)" if missing else None


def _cli(port: int, *args: str, timeout: float = 10) -> str:
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args], capture_output=True,
                          text=True, timeout=timeout, check=True).stdout


class PrivateRedisCluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.ports = [free_port() for _ in range(MASTERS)]
        # the cluster bus port, set explicitly: the default (port + 10000) may be taken or past 65535
        self.bus_ports = [free_port() for _ in range(MASTERS)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        for port, bus in zip(self.ports, self.bus_ports, strict=True):
            node_dir = self.workdir / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            self.processes.append(subprocess.Popen(
                ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-port", str(bus), "--cluster-config-file", str(node_dir / "nodes.conf"),
                 "--cluster-node-timeout", "2000", "--dir", str(node_dir), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        for port in self.ports:
            while not self._answers(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}")
                time.sleep(0.05)
        subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, check=True, timeout=30)
        while not all("cluster_state:ok" in _cli(port, "cluster", "info") for port in self.ports):
            if time.monotonic() > deadline + 20:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    @staticmethod
    def _answers(port: int) -> bool:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return "PONG" in _cli(port, "ping", timeout=2)
        return False

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.processes = []
