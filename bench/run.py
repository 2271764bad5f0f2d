"""Benchmark driver: Vask against Soketi (and the Django Channels anchor) on the same harness.

Runs itself inside a private network namespace (``unshare -n``), so every server listens on a loopback of its
own and Soketi's discovery broadcasts reach nothing. Each server runs pinned to CPU 0, the C load generator
(bench/loadgen.c, subscribers and signed HTTP publisher in one epoll thread) to CPU 1. Every scenario is run
``--reps`` times, interleaved (vask, soketi, vask, soketi, ...), each on a freshly started server. Server CPU
is user+sys from /proc/PID/stat (with descendants); RSS from /proc/PID/status.

    python bench/run.py                    # everything (about 20 minutes)
    python bench/run.py --quick            # one repetition, shorter runs
    python bench/run.py --only fanout,memory --servers vask

Results: bench/results/<date>.json (raw) and bench/results/latest.md (tables for BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOADGEN = BENCH / "loadgen"
REFSERVER = BENCH / "refserver"
SOKETI = BENCH / "soketi" / "node_modules" / "@soketi" / "soketi" / "bin" / "server.js"
DJANGO_VENV = BENCH / ".venv-django"
PORT = 6001
REDIS_PORT = 6390
APP_ID, KEY, SECRET = "1", "app-key", "app-secret"
SERVER_CPU, CLIENT_CPU = "0", "1"
ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"  # the scale-out rows: worker processes may use every core
TICK = os.sysconf("SC_CLK_TCK")


# -- processes ------------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for root in pids:
        for pid in descendants(root):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (all threads)
    return total


def rss_kb(pids: list[int]) -> int:
    total = 0
    for root in pids:
        for pid in descendants(root):
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
    return total


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


class Server:
    """One freshly started server under test; ``pids`` are the processes whose CPU and RSS count."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None,
               cpus: str = SERVER_CPU) -> subprocess.Popen[bytes]:
        out = self.log.open("ab")
        proc = subprocess.Popen(["taskset", "-c", cpus, *argv], env={**os.environ, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append(proc)
        return proc

    def _redis(self) -> None:
        redis = self._spawn(["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"])
        wait_port(REDIS_PORT, redis)

    def _vask_cluster(self, nodes: int, workers: int) -> subprocess.Popen[bytes]:
        """``nodes`` nodes on ports PORT, PORT+1, ... each with ``workers`` processes, all through one Redis."""
        self._redis()
        env = {"VASK_DATA_DIR": str(self.tmp), "VASK_BROKER": f"redis://127.0.0.1:{REDIS_PORT}"}
        subprocess.run([str(ROOT / ".venv/bin/vask"), "apps", "create", "--id", APP_ID, "--key", KEY,
                        "--secret", SECRET], env={**os.environ, **env}, check=True, capture_output=True)
        procs = [self._spawn([str(ROOT / ".venv/bin/vask"), "serve", "--host", "127.0.0.1", "--port",
                              str(PORT + i), "--no-default-app", "--workers", str(workers)], env, cpus=ALL_CPUS)
                 for i in range(nodes)]
        for i, proc in enumerate(procs[1:], 1):
            wait_port(PORT + i, proc)
        time.sleep(1.0 * workers)  # every worker listens and has joined the cluster
        return procs[0]

    def start(self) -> None:
        if self.name.startswith("vask-redis-"):  # vask-redis-<workers>: one node, N processes, one port
            proc = self._vask_cluster(1, int(self.name.rsplit("-", 1)[1]))
        elif self.name == "vask-2nodes":
            proc = self._vask_cluster(2, 1)
        elif self.name == "vask":
            env = {"VASK_DATA_DIR": str(self.tmp)}
            subprocess.run([str(ROOT / ".venv/bin/vask"), "apps", "create", "--id", APP_ID, "--key", KEY,
                            "--secret", SECRET], env={**os.environ, **env}, check=True, capture_output=True)
            proc = self._spawn([str(ROOT / ".venv/bin/vask"), "serve", "--host", "127.0.0.1", "--port", str(PORT),
                                "--no-default-app"], env)
        elif self.name == "soketi":
            proc = self._spawn(["node", str(SOKETI), "start"], {
                "SOKETI_HOST": "127.0.0.1", "SOKETI_PORT": str(PORT), "SOKETI_METRICS_HOST": "127.0.0.1",
                "SOKETI_CLUSTER_UNICAST_ADDRESSES": "127.0.0.1", "SOKETI_ADAPTER_DRIVER": "local",
                "SOKETI_DEFAULT_APP_ID": APP_ID, "SOKETI_DEFAULT_APP_KEY": KEY,
                "SOKETI_DEFAULT_APP_SECRET": SECRET, "SOKETI_DEBUG": "0"})
        elif self.name in ("c-write", "c-pass"):
            proc = self._spawn([str(REFSERVER), "--port", str(PORT), "--mode", self.name[2:]])
        elif self.name == "django":
            self._redis()
            proc = self._spawn([str(DJANGO_VENV / "bin/python"), "-m", "uvicorn", "anchor.asgi:application",
                                "--host", "127.0.0.1", "--port", str(PORT), "--loop", "uvloop",
                                "--ws", "websockets", "--log-level", "warning", "--no-access-log"],
                               {"PYTHONPATH": str(BENCH / "django_anchor"),
                                "ANCHOR_REDIS": f"redis://127.0.0.1:{REDIS_PORT}"})
        else:
            raise ValueError(self.name)
        wait_port(PORT, proc)
        time.sleep(0.5)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
        # the next server binds the same port; make sure the old socket is gone
        time.sleep(0.3)


@contextlib.contextmanager
def running(name: str, log: Path) -> Iterator[Server]:
    server = Server(name, log)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def loadgen(args: list[str]) -> subprocess.Popen[str]:
    argv = ["taskset", "-c", CLIENT_CPU, str(LOADGEN), "--port", str(PORT), "--app-id", APP_ID, "--key", KEY,
            "--secret", SECRET, *args]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)


def read_line(proc: subprocess.Popen[str], want: str) -> str:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load generator exited ({proc.wait()}) before {want!r}")
        if line.startswith(want):
            return line


# -- scenarios -----------------------------------------------------------------------------------------


def measured_phase(server: Server, gen: subprocess.Popen[str]) -> dict[str, Any]:
    """Server CPU and RSS around the measured phase of a ``--sync`` load generator; its result with them."""
    assert gen.stdin is not None
    read_line(gen, "ready")
    time.sleep(0.5)  # let subscription bookkeeping settle before the measured phase
    cpu0, rss0 = cpu_seconds(server.pids), rss_kb(server.pids)
    gen.stdin.write("go\n")
    gen.stdin.flush()
    read_line(gen, "phase-end")
    cpu1, rss1 = cpu_seconds(server.pids), rss_kb(server.pids)
    result: dict[str, Any] = json.loads(read_line(gen, "{"))
    gen.wait()
    cpu = cpu1 - cpu0
    result.update(server_cpu_s=round(cpu, 3), rss_before_kb=rss0, rss_after_kb=rss1,
                  server_cpu_pct=round(100 * cpu / result["window_s"], 1) if result["window_s"] else None)
    return result


def per_cpu_s(count: float, cpu: float) -> float | None:
    return round(count / cpu, 1) if cpu > 0 else None


def fanout(server: Server, subs: int, channels: int, publish: str, duration: float,
           pub_port: int = PORT, private: bool = False, batch: int = 1, multi: int = 1,
           pub_conns: int | None = None) -> dict[str, Any]:
    """``batch``: events per batch_events request; ``multi``: channels per trigger (1: a plain publish)."""
    conns = pub_conns or (16 if private else 8)
    gen = loadgen(["--subs", str(subs), "--channels", str(channels), "--publish", publish,
                   "--duration", str(duration), "--pub-conns", str(conns), "--sync",
                   "--pub-port", str(pub_port), *(["--private"] if private else []),
                   *(["--batch", str(batch)] if batch > 1 else []), *(["--multi", str(multi)] if multi > 1 else [])])
    result = measured_phase(server, gen)
    cpu = result["server_cpu_s"]
    result.update(deliveries_per_cpu_s=per_cpu_s(result["delivered"], cpu),
                  publishes_per_cpu_s=per_cpu_s(result["acked"], cpu),  # HTTP requests
                  events_per_cpu_s=per_cpu_s(result["events_acked"], cpu))
    return result


def presence(server: Server, members: int, rate: float, duration: float) -> dict[str, Any]:
    """Members join presence-bench one after another, then leave, ``rate`` joins or leaves per second."""
    gen = loadgen(["--mode", "presence", "--subs", str(members), "--join-rate", str(rate),
                   "--duration", str(duration), "--sync"])
    result = measured_phase(server, gen)
    cpu, joins = result["server_cpu_s"], result["joins"]
    result.update(joins_per_cpu_s=per_cpu_s(joins, cpu),  # a join and its leave; both in the phase
                  cpu_us_per_join=round(1e6 * cpu / joins, 1) if joins else None)
    return result


def memory(server: Server, subs: int) -> dict[str, Any]:
    warm = loadgen(["--mode", "idle", "--subs", "50"])  # first connections load code paths; not counted
    read_line(warm, "ready")
    assert warm.stdin is not None
    warm.stdin.close()
    warm.wait()
    time.sleep(1.0)
    base = rss_kb(server.pids)
    gen = loadgen(["--mode", "idle", "--subs", str(subs), "--concurrency", "200"])
    read_line(gen, "ready")
    time.sleep(2.0)
    held = rss_kb(server.pids)
    assert gen.stdin is not None
    gen.stdin.close()
    result: dict[str, Any] = json.loads(read_line(gen, "{"))
    gen.wait()
    result.update(rss_base_kb=base, rss_held_kb=held, kb_per_conn=round((held - base) / subs, 2))
    return result


def churn(server: Server, cycles: int) -> dict[str, Any]:
    warm = loadgen(["--mode", "churn", "--cycles", "2000", "--concurrency", "50"])
    read_line(warm, "{")
    warm.wait()
    time.sleep(1.0)
    base = rss_kb(server.pids)
    cpu0 = cpu_seconds(server.pids)
    gen = loadgen(["--mode", "churn", "--cycles", str(cycles), "--concurrency", "50",
                   "--progress", str(max(cycles // 10, 1))])
    samples = []
    assert gen.stdout is not None
    while True:
        line = gen.stdout.readline()
        if not line:
            raise RuntimeError("churn load generator died")
        if line.startswith("progress"):
            samples.append((int(line.split()[1]), rss_kb(server.pids)))
        elif line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            break
    gen.wait()
    cpu = cpu_seconds(server.pids) - cpu0
    time.sleep(2.0)
    after = rss_kb(server.pids)
    result.update(rss_base_kb=base, rss_after_kb=after, rss_growth_kb=after - base,
                  rss_peak_kb=max([s[1] for s in samples] + [after]), rss_samples=samples,
                  server_cpu_s=round(cpu, 3))
    return result


# -- the suite -----------------------------------------------------------------------------------------


def scenarios(quick: bool) -> list[tuple[str, str, dict[str, Any]]]:
    d = 3.0 if quick else 5.0
    return [
        ("fanout", "1000 subs, 1 channel, closed loop", dict(subs=1000, channels=1, publish="closed:2", duration=d)),
        ("fanout", "10 channels x 100 subs, closed loop",
         dict(subs=1000, channels=10, publish="closed:2", duration=d)),
        ("fanout", "10000 subs, 1 channel, closed loop",
         dict(subs=10000, channels=1, publish="closed:2", duration=d)),
        # What a Django app mostly does: notify one user on their own private channel (issue #13).
        ("publish", "1000 private channels x 1 subscriber, 16 publishes in flight",
         dict(subs=1000, channels=1000, publish="closed:16", duration=d, private=True)),
        ("batch", "1000 private channels x 1 subscriber, batch_events of 10, 16 requests in flight",
         dict(subs=1000, channels=1000, publish="closed:16", duration=d, private=True, batch=10)),
        ("multi", "1000 private channels x 1 subscriber, one trigger to 10 channels, 16 in flight",
         dict(subs=1000, channels=1000, publish="closed:16", duration=d, private=True, multi=10)),
        ("publish_rate", "1000 private channels x 1 subscriber, 100 publishes/s",
         dict(subs=1000, channels=1000, publish="rate:100", duration=d + 1, private=True)),
        ("publish_rate", "1000 private channels x 1 subscriber, 1000 publishes/s",
         dict(subs=1000, channels=1000, publish="rate:1000", duration=d + 1, private=True, pub_conns=64)),
        ("presence", "100 members join presence-bench one by one, then leave, 200 joins or leaves/s",
         dict(members=100, rate=200.0, duration=d + 1)),
        ("latency", "1000 subs, 10 publishes/s", dict(subs=1000, channels=1, publish="rate:10", duration=d + 3)),
        ("latency", "1000 subs, 50 publishes/s", dict(subs=1000, channels=1, publish="rate:50", duration=d + 3)),
        ("latency", "1000 subs, 100 publishes/s", dict(subs=1000, channels=1, publish="rate:100", duration=d + 3)),
        ("memory", "1000 idle subscribed connections", dict(subs=1000)),
        ("memory", "10000 idle subscribed connections", dict(subs=10000)),
        ("churn", "connect-subscribe-disconnect cycles", dict(cycles=20000 if quick else 100000)),
        ("cluster", "1000 subs, 1 channel, closed loop", dict(subs=1000, channels=1, publish="closed:2", duration=d)),
        ("crossnode", "1000 subs on node A, 50 publishes/s to node A",
         dict(subs=1000, channels=1, publish="rate:50", duration=d + 3, pub_port=PORT)),
        ("crossnode", "1000 subs on node A, 50 publishes/s to node B",
         dict(subs=1000, channels=1, publish="rate:50", duration=d + 3, pub_port=PORT + 1)),
        ("django", "1000 subs, 1 channel, closed loop", dict(subs=1000, channels=1, publish="closed:2", duration=d)),
    ]


def run_one(kind: str, server: Server, params: dict[str, Any]) -> dict[str, Any]:
    if kind in ("fanout", "publish", "batch", "multi", "publish_rate", "latency", "django", "cluster", "crossnode"):
        return fanout(server, **params)
    if kind == "presence":
        return presence(server, **params)
    if kind == "memory":
        return memory(server, **params)
    return churn(server, **params)


def machine() -> dict[str, str]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())

    def version(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "n/a"

    soketi_pkg = BENCH / "soketi/node_modules/@soketi/soketi/package.json"
    uws_pkg = BENCH / "soketi/node_modules/uWebSockets.js/package.json"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": model, "cores": str(os.cpu_count()), "kernel": platform.release(),
        "python": platform.python_version(),
        "vask": version([str(ROOT / ".venv/bin/python"), "-c", "import vask; print(vask.__version__)"]),
        "vask_commit": version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "uvloop": version([str(ROOT / ".venv/bin/python"), "-c", "import uvloop; print(uvloop.__version__)"]),
        "node": version(["node", "--version"]),
        "soketi": json.loads(soketi_pkg.read_text())["version"] if soketi_pkg.exists() else "not installed",
        "uwebsockets": json.loads(uws_pkg.read_text()).get("version", "?") if uws_pkg.exists() else "n/a",
        "django_channels": version([str(DJANGO_VENV / "bin/python"), "-c",
                                    "import django, channels, channels_redis; print(f'Django {django.__version__}, "
                                    "channels {channels.__version__}, channels_redis {channels_redis.__version__}')"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repetition, shorter runs")
    parser.add_argument("--only", default="",
                        help="comma-separated kinds: fanout,publish,batch,multi,publish_rate,presence,latency,memory,"
                        "churn,cluster,crossnode,django")
    parser.add_argument("--servers", default="vask,soketi")
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument("--no-limit", action="store_true",
                        help="skip the C reference server in fan-out and publish runs")
    args = parser.parse_args()
    if os.environ.get("VASK_BENCH_NETNS") != "1":
        # Re-run inside a private network namespace: loopback only, nothing reaches the host's network.
        os.execvp("unshare", ["unshare", "-n", "env", "VASK_BENCH_NETNS=1", sys.executable, *sys.argv])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by servers and the load generator
    if not LOADGEN.exists() or not REFSERVER.exists():
        sys.exit("bench/loadgen or bench/refserver is missing: run `make bench-build`")
    reps = 1 if args.quick else args.reps
    servers = [s for s in args.servers.split(",") if s]
    if "soketi" in servers and not SOKETI.exists():
        sys.exit("Soketi is not installed: run `make bench-soketi`")
    only = {k for k in args.only.split(",") if k}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "servers.log"
    log.write_text("")
    info = machine()
    print(json.dumps(info, indent=1), flush=True)
    results: list[dict[str, Any]] = []
    for kind, label, params in scenarios(args.quick):
        if only and kind not in only:
            continue
        names = {"django": ["vask", "django"], "cluster": ["vask", "vask-redis-1", "vask-redis-2", "vask-redis-4"],
                 "crossnode": ["vask-2nodes"]}.get(kind, servers)
        if kind == "fanout" and not args.no_limit:
            names = [*names, "c-write", "c-pass"]  # the physical limit, measured in the same repetition
        if kind == "publish" and not args.no_limit:
            names = [*names, "c-write"]  # the floor for per-user publishes (refserver routes by channel name)
        if kind == "django" and not (DJANGO_VENV / "bin/python").exists():
            print("skipping the Django anchor: run `make bench-django`", flush=True)
            continue
        for rep in range(reps):
            for name in names:
                with running(name, log) as server:
                    started = time.monotonic()
                    try:
                        result = run_one(kind, server, params)
                    except Exception as exc:  # one failed run is reported, the suite goes on
                        result = {"error": str(exc)}
                result.update(kind=kind, label=label, server=name, rep=rep,
                              elapsed_s=round(time.monotonic() - started, 1))
                results.append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "rss_samples"}), flush=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"{stamp}.json").write_text(json.dumps({"machine": info, "results": results}, indent=1))
    from report import render  # bench/report.py

    markdown = render(info, results)
    (out / "latest.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
