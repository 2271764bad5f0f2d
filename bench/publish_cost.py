"""CPU cost of one publish inside the node (hub, observers, fan-out, flush loop; no sockets, no HTTP), measured on
two commits in alternating subprocesses: the fan-out benchmark's question without the machine's noise.

Each child builds the hub as ``vask serve`` does on one node (with the commit's console feed and stats recorder
attached when it has them: ``vask.console.wiring``), subscribes N connections whose writes go nowhere, and times
``hub.publish`` + one flush pass over many publishes with ``time.process_time``.

    python bench/publish_cost.py 04ffed4 HEAD --reps 10 --subs 1000
"""

from __future__ import annotations

import argparse

from alternate import compare  # bench/alternate.py

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--publishes", type=int, default=3000)
    args = parser.parse_args()
    compare(CHILD, [str(args.subs), str(args.publishes)], args.before, args.after, args.reps,
            "us_per_publish", f"per publish to {args.subs} subscribers")


if __name__ == "__main__":
    main()
