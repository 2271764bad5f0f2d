"""CPU cost of one signed HTTP API publish inside the server process, without the kernel: the HTTP parser, the
signature check, the quota and rate-limit checks, the hub, the observers, the response and the flush, measured
on two commits in alternating subprocesses (like bench/publish_cost.py).

Each child builds the server state as ``vask serve`` does on one node (the usage meter, the webhook service and
the debug console's observers attached, where the commit has them), subscribes one connection to each of N
private channels, and feeds ``HttpProtocol.data_received`` whole signed ``POST /apps/1/events`` requests
round-robin over the channels, as the per-user-channels benchmark does, on uvloop; transports write nowhere.

    python bench/http_cost.py HEAD~1 HEAD --reps 10
    python bench/http_cost.py HEAD~1 HEAD --batch 10     # batch_events of 10 events to 10 channels
"""

from __future__ import annotations

import argparse

from alternate import compare  # bench/alternate.py

CHILD = r"""
import asyncio, hashlib, hmac, json, sys, time
from vask.apps.base import App
from vask.apps.memory import MemoryAppStore
from vask.config import Settings
from vask.core.connection import Connection
from vask.core.hub import Hub
from vask.server.appcache import AppCache
from vask.server.http import HttpProtocol
from vask.server.node import Flusher, ServerState

channels, requests, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
APP = App(id="1", key="app-key", secret="app-secret")


class Peer:
    def write(self, data): pass
    def buffered(self): return 0
    def close(self, code, reason): pass


class Transport:
    def write(self, data): pass
    def is_closing(self): return False
    def get_write_buffer_size(self): return 0
    def pause_reading(self): pass
    def resume_reading(self): pass
    def close(self): pass
    def abort(self): pass
    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default


class Loop:
    def call_soon(self, callback, *args): pass  # the flush pass is run by hand below


def signed(i):
    event = {"name": "bench", "data": "@@" + "x" * 98}
    if batch > 1:  # batch_events to consecutive channels, as the benchmark's --batch does
        path = "/apps/1/batch_events"
        body = json.dumps({"batch": [{**event, "channel": f"private-bench-{(i + k) % channels}"}
                                     for k in range(batch)]}).encode()
    else:
        path = "/apps/1/events"
        body = json.dumps({**event, "channel": f"private-bench-{i}"}).encode()
    query = (f"auth_key=app-key&auth_timestamp={int(time.time())}&auth_version=1.0"
             f"&body_md5={hashlib.md5(body).hexdigest()}")
    signature = hmac.new(b"app-secret", f"POST\n{path}\n{query}".encode(), hashlib.sha256).hexdigest()
    return (f"POST {path}?{query}&auth_signature={signature} HTTP/1.1\r\nHost: 127.0.0.1:6001\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def main():
    settings = Settings(database_url="memory://", create_default_app=False)
    hub = Hub(time.monotonic)
    store = MemoryAppStore()
    store.create(APP)
    apps = AppCache(store, 3600.0)
    await apps.by_id("1")
    await apps.by_key("app-key")
    extras = []
    try:  # what `vask serve` attaches to the hub's observers, where this commit has it
        from vask.billing.memory import MemoryBillingStore
        from vask.billing.meter import Meter
        from vask.core.observer import Observers
        from vask.factory import make_usage_counters
        from vask.webhooks.service import WebhookService
        meter = Meter(MemoryBillingStore(), counters=make_usage_counters(settings, hub))
        await meter.start()
        webhooks = WebhookService(settings, apps=apps)
        await webhooks.start()
        hub.observer = Observers(meter, webhooks)
        extras += ["meter", "webhooks"]
    except Exception as exc:
        meter = None
        print(f"no meter/webhooks: {exc}", file=sys.stderr)
    try:
        from vask.console.wiring import open_console
        console = open_console(settings, hub)
        extras.append("console")
    except Exception as exc:
        print(f"no console: {exc}", file=sys.stderr)
    flusher = Flusher(Loop(), lambda: hub)
    state = ServerState(settings, hub, apps, flusher, meter=meter)
    peer = Peer()
    for i in range(channels):
        conn = Connection(APP, peer, flusher, time.monotonic(), 1 << 30)
        hub.add(conn)
        hub.subscribe(conn, f"private-bench-{i}")
    flusher.flush()
    protos = []
    for _ in range(16):  # 16 publisher connections, as in the benchmark
        proto = HttpProtocol(state)
        proto.connection_made(Transport())
        protos.append(proto)
    payloads = [signed(i) for i in range(channels)]
    for i in range(requests // 10):  # warm-up
        protos[i % 16].data_received(payloads[i % channels])
        flusher.flush()
    started = time.process_time()
    for i in range(requests):
        protos[i % 16].data_received(payloads[i % channels])
        flusher.flush()
    elapsed = time.process_time() - started
    print(json.dumps({"us_per_request": elapsed / requests * 1e6, "observers": extras}), flush=True)
    import os
    os._exit(0)  # skip the services' shutdown: only the measured loop matters


try:
    import uvloop  # as `vask serve` runs
except ImportError:
    asyncio.run(main())
else:
    uvloop.run(main())
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1, help="events per request (batch_events when > 1)")
    args = parser.parse_args()
    compare(CHILD, [str(args.channels), str(args.requests), str(args.batch)], args.before, args.after, args.reps,
            "us_per_request", "per signed publish" if args.batch == 1 else f"per batch of {args.batch}")


if __name__ == "__main__":
    main()
