"""HTTP fallback benchmark: N xhr_streaming (or xhr_polling) sessions against N WebSockets on one channel.

Each run starts a fresh `vask serve` pinned to CPU 0; this process (asyncio + uvloop, pinned to CPU 1) holds
the N clients, speaking the wire as pusher-js does (WebSocket frames, or the SockJS-style lines of the HTTP
transports with their xhr_send posts), and publishes at a fixed rate through the signed HTTP API. Every event
carries its send time; the client reads it back from the raw bytes (the same regex for every transport, so
client-side parsing costs the same). Reported: delivery latency (p50, p99 over all deliveries) and server
CPU (user+sys from /proc) per delivered message, plus lost deliveries.

    .venv/bin/python bench/http_fallback.py                       # 1,000 clients, 20 publishes/s for 10 s
    .venv/bin/python bench/http_fallback.py --clients 200 --transports ws,xhr_streaming --seconds 5

Results: printed as a Markdown table, and bench/results/http-fallback-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import datetime
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VASK = str(ROOT / ".venv/bin/vask")
APP_ID, KEY, SECRET = "1", "app-key", "app-secret"
CHANNEL = "bench"
TICK = os.sysconf("SC_CLK_TCK")
STAMP = re.compile(rb'ts\\+": ?([0-9.]+)')  # inside the JSON-string data, escaped once (WS) or twice (HTTP)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Server:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="vask-bench-http-"))
        env = {**os.environ, "VASK_DATA_DIR": str(self.tmp), "VASK_LOG_LEVEL": "warning"}
        subprocess.run([VASK, "apps", "create", "--id", APP_ID, "--key", KEY, "--secret", SECRET], env=env,
                       check=True, capture_output=True)
        taskset = ["taskset", "-c", "0"] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []
        self.proc = subprocess.Popen([*taskset, VASK, "serve", "--host", "127.0.0.1", "--port", "0",
                                      "--no-default-app"], env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"listening on ws://127.0.0.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                break
        else:
            raise RuntimeError("vask serve did not start")
        stream = self.proc.stdout
        threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Client:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.subscribed = asyncio.get_running_loop().create_future()
        self.tail = b""  # the end of the previous read: a stamp may be split between two reads

    def feed(self, data: bytes) -> None:
        now = time.time()
        joined = self.tail + data
        for found in STAMP.finditer(joined):
            if found.end() > len(self.tail):
                self.latencies.append(now - float(found.group(1)))
        self.tail = joined[-48:]
        if not self.subscribed.done() and b"subscription_succeeded" in data:
            self.subscribed.set_result(None)


def ws_text_frame(payload: bytes) -> bytes:
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + mask + masked  # payloads here are < 126 bytes


async def ws_client(port: int) -> tuple[Client, asyncio.StreamWriter]:
    client = Client()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /app/{KEY}?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    await reader.readuntil(b"\r\n\r\n")
    writer.write(ws_text_frame(json.dumps({"event": "pusher:subscribe", "data": {"channel": CHANNEL}}).encode()))

    async def read() -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                client.feed(data)  # frames are not reassembled: the stamps are found as is

    asyncio.get_running_loop().create_task(read())
    return client, writer


async def http_send(port: int, path: str, frame: dict[str, Any], n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps([json.dumps(frame)]).encode()
    writer.write((f"POST {path}/xhr_send?t=1&n={n} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body)
    await reader.read()
    writer.close()


async def stream_client(port: int, index: int) -> tuple[Client, asyncio.StreamWriter]:
    client = Client()
    path = f"/pusher/app/{KEY}/{index % 1000}/{secrets.token_hex(4)}"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST {path}/xhr_streaming?protocol=7&t=1&n=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
                 .encode())
    await reader.readuntil(b"\r\n\r\n")

    async def read() -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                client.feed(data)

    asyncio.get_running_loop().create_task(read())
    await http_send(port, path, {"event": "pusher:subscribe", "data": {"channel": CHANNEL}}, 2)
    return client, writer


async def poll_client(port: int, index: int) -> tuple[Client, asyncio.StreamWriter]:
    client = Client()
    path = f"/pusher/app/{KEY}/{index % 1000}/{secrets.token_hex(4)}"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    counter = iter(range(10, 10**9))

    async def poll() -> bytes:
        writer.write(f"POST {path}/xhr?protocol=7&t=1&n={next(counter)} HTTP/1.1\r\nHost: x\r\nContent-Length: 0"
                     "\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        return await reader.readexactly(length)

    await poll()  # "o"
    await poll()  # connection_established

    async def loop() -> None:
        with contextlib.suppress(Exception):
            while True:
                client.feed(await poll())  # at once again, as pusher-js does

    asyncio.get_running_loop().create_task(loop())
    await http_send(port, path, {"event": "pusher:subscribe", "data": {"channel": CHANNEL}}, 2)
    return client, writer


async def run(transport: str, clients: int, rate: float, seconds: float) -> dict[str, Any]:
    import pusher

    server = Server()
    try:
        make = {"ws": lambda i: ws_client(server.port), "xhr_streaming": lambda i: stream_client(server.port, i),
                "xhr_polling": lambda i: poll_client(server.port, i)}[transport]
        held = []
        for start in range(0, clients, 50):
            held += await asyncio.gather(*(make(i) for i in range(start, min(clients, start + 50))))
        await asyncio.wait_for(asyncio.gather(*(c.subscribed for c, _ in held)), 30)
        api = pusher.Pusher(app_id=APP_ID, key=KEY, secret=SECRET, host="127.0.0.1", port=server.port, ssl=False)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.5)
        for client, _ in held:
            client.latencies.clear()
        cpu_before = cpu_seconds(server.proc.pid)
        published = 0
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            await loop.run_in_executor(None, api.trigger, CHANNEL, "tick", {"ts": time.time(), "pad": "x" * 40})
            published += 1
            await asyncio.sleep(max(0.0, started + published / rate - time.monotonic()))
        await asyncio.sleep(1.0)  # the last deliveries
        cpu = cpu_seconds(server.proc.pid) - cpu_before
        latencies = sorted(x for client, _ in held for x in client.latencies)
        for _, writer in held:
            writer.close()
        expected = published * clients
        return {"transport": transport, "clients": clients, "rate": rate, "seconds": seconds,
                "published": published, "delivered": len(latencies), "lost": expected - len(latencies),
                "server_cpu_s": round(cpu, 3),
                "cpu_us_per_delivery": round(cpu / max(1, len(latencies)) * 1e6, 2),
                "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
                "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2) if latencies else None}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="publishes per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--transports", default="ws,xhr_streaming,xhr_polling")
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    try:
        import uvloop
    except ImportError:
        uvloop = None
    results = []
    for _ in range(args.reps):
        for transport in args.transports.split(","):
            coroutine = run(transport, args.clients, args.rate, args.seconds)
            result = uvloop.run(coroutine) if uvloop else asyncio.run(coroutine)
            print(json.dumps(result), flush=True)
            results.append(result)
    print("\n| transport | clients | publishes/s | delivered | lost | server CPU µs per delivery | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['transport']} | {r['clients']} | {r['rate']:g} | {r['delivered']:,} | {r['lost']} | "
              f"{r['cpu_us_per_delivery']} | {r['p50_ms']} | {r['p99_ms']} |")
    out = BENCH / "results" / f"http-fallback-{datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H%M}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"argv": sys.argv[1:], "results": results}, indent=2))
    print(f"\nraw: {out}")


if __name__ == "__main__":
    main()
