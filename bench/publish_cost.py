"""CPU cost of one publish inside the node (hub, observers, fan-out, flush loop; no sockets, no HTTP), measured on
two commits in alternating subprocesses: the fan-out benchmark's question without the machine's noise.

Each child builds the hub as ``vask serve`` does on one node (with the commit's console feed and stats recorder
attached when it has them: ``vask.console.wiring``), subscribes N connections whose writes go nowhere, and times
``hub.publish`` + one flush pass over many publishes with ``time.process_time``.

    python bench/publish_cost.py 04ffed4 HEAD --reps 10 --subs 1000
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, sys, time
from vask.apps.base import App
from vask.config import Settings
from vask.core.connection import Connection
from vask.core.hub import Hub
from vask.server.node import Flusher

class Peer:
    def write(self, data): pass
    def buffered(self): return 0
    def close(self, code, reason): pass

class Loop:
    def call_soon(self, callback): pass  # the flush pass is run by hand below

subs, publishes = int(sys.argv[1]), int(sys.argv[2])
hub = Hub(time.monotonic)
try:
    from vask.console.wiring import open_console
except ImportError:
    console = None
else:
    console = open_console(Settings(database_url="memory://", create_default_app=False), hub)
flusher = Flusher(Loop(), lambda: hub)
app = App(id="1", key="app-key", secret="app-secret")
peer = Peer()
for _ in range(subs):
    conn = Connection(app, peer, flusher, time.monotonic(), 1 << 30)
    hub.add(conn)
    hub.subscribe(conn, "bench")
flusher.flush()
data = '{"seq": 1, "payload": "' + "x" * 80 + '"}'
for _ in range(publishes // 10):  # warm-up
    hub.publish(app, "bench", "tick", data)
    flusher.flush()
started = time.process_time()
for _ in range(publishes):
    hub.publish(app, "bench", "tick", data)
    flusher.flush()
elapsed = time.process_time() - started
print(json.dumps({"us_per_publish": elapsed / publishes * 1e6, "console": console is not None}))
"""


def export(rev: str, into: Path) -> Path:
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--publishes", type=int, default=3000)
    args = parser.parse_args()
    results: dict[str, list[float]] = {args.before: [], args.after: []}
    with tempfile.TemporaryDirectory(prefix="vask-cost-") as tmp:
        trees = {rev: export(rev, Path(tmp) / f"t{i}") for i, rev in enumerate(results)}
        for rep in range(args.reps):
            for rev in (list(trees) if rep % 2 == 0 else list(reversed(trees))):
                done = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", CHILD, str(args.subs),
                                       str(args.publishes)], env={"PYTHONPATH": str(trees[rev])},
                                      capture_output=True, text=True, check=True)
                result = json.loads(done.stdout)
                results[rev].append(result["us_per_publish"])
                print(json.dumps({"rev": rev, "rep": rep, **result}), flush=True)
    for rev, values in results.items():
        print(f"{rev}: median {statistics.median(values):.1f} µs per publish to {args.subs} subscribers "
              f"({min(values):.1f}-{max(values):.1f}), {len(values)} runs")
    # On a shared machine other work only ever adds time: the fastest runs are the least disturbed.
    print(f"after / before, fastest runs: {min(results[args.after]) / min(results[args.before]):.3f}")
    before, after = (statistics.median(v) for v in results.values())
    print(f"after / before: {after / before:.3f}")


if __name__ == "__main__":
    main()
