#!/usr/bin/env python3
"""Soak a real `vask serve` process: connect-subscribe-close cycles, then mixed traffic (RELIABILITY.md, "Soak").

Phase 1, churn: ``--cycles`` cycles of connect -> subscribe (public, private or presence, in turn) -> one client
event (private and presence) -> leave, ``--concurrency`` at a time. The leave mixes the close paths: a clean
close handshake (8 in 10), an abrupt TCP reset (SO_LINGER 0, 2 in 10 less the silent ones) and, 1 in 100, a
client that goes silent and never answers ``pusher:ping``, which the server must close (4201) after
``activity_timeout + pong_timeout``.

Phase 2, mixed traffic for ``--mixed-seconds``: long-lived subscribers on public, private and presence
channels; sequenced HTTP API publishes (``/events`` and ``/batch_events``) every 50 ms; client events; HTTP
API reads; presence members joining and leaving; connect-subscribe-close churn alongside.

Pass criteria (exit status 1 otherwise): 0 errors (any exception, unexpected frame, missed, duplicated or
reordered event, traceback or ERROR line in the server's log), server RSS growth < ``--rss-limit-mib`` from the
baseline taken after warm-up, open file descriptors back to the baseline. Prints the figures as JSON (and
writes them to ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import platform
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

APP = {"id": "770077", "key": "soak-key", "secret": "soak-secret"}
TOKEN = "soak-admin-token"
ACTIVITY_TIMEOUT = 2  # seconds (app setting): a silent client gets pusher:ping after this...
PONG_TIMEOUT = 1  # ...and is closed this long after it
LISTEN_RE = re.compile(r"listening on ws://([^:\s]+):(\d+)")
ADMIN_RE = re.compile(r"admin API listening on http://([^:\s]+):(\d+)")


class Server:
    """A `vask serve` process of this run, with its log kept in memory."""

    def __init__(self, workdir: Path) -> None:
        env = {**os.environ, "VASK_DATA_DIR": str(workdir), "VASK_PONG_TIMEOUT": str(PONG_TIMEOUT),
               "VASK_ADMIN_TOKEN": TOKEN, "VASK_ADMIN_PORT": "0", "VASK_APP_CACHE_TTL": "5",
               "VASK_SWEEP_INTERVAL": "0.5"}
        subprocess.run([sys.executable, "-m", "vask", "apps", "create", "--id", APP["id"], "--key", APP["key"],
                        "--secret", APP["secret"], "--set", "client_events=true",
                        "--set", f"activity_timeout={ACTIVITY_TIMEOUT}", "--json"],
                       env=env, check=True, capture_output=True, timeout=60)
        self.process = subprocess.Popen([sys.executable, "-m", "vask", "serve", "--port", "0", "--no-default-app"],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self.process.stdout is not None
        self.log: list[str] = []
        self.port = self.admin = ""
        for line in self.process.stdout:
            self.log.append(line)
            if (found := ADMIN_RE.search(line)) is not None:
                self.admin = f"http://{found.group(1)}:{found.group(2)}"
            if (found := LISTEN_RE.search(line)) is not None:
                self.port = found.group(2)
                break
        if not self.port:
            raise RuntimeError("vask serve did not start:\n" + "".join(self.log))
        stream = self.process.stdout
        threading.Thread(target=lambda: self.log.extend(stream), daemon=True).start()
        self.http = f"http://127.0.0.1:{self.port}"
        self.ws = f"ws://127.0.0.1:{self.port}/app/{APP['key']}?protocol=7&client=soak&version=1"

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def meter(self) -> dict[str, Any]:
        request = urllib.request.Request(self.admin + "/api/meter", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def log_errors(self) -> list[str]:
        return [line.rstrip() for line in list(self.log) if "Traceback" in line or " ERROR " in line]

    def stop(self) -> int:
        self.process.terminate()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def sign(text: str) -> str:
    return hmac.new(APP["secret"].encode(), text.encode(), hashlib.sha256).hexdigest()


def channel_auth(socket_id: str, channel: str, channel_data: str | None = None) -> dict[str, str]:
    text = f"{socket_id}:{channel}" + (f":{channel_data}" if channel_data is not None else "")
    auth = {"auth": f"{APP['key']}:{sign(text)}"}
    if channel_data is not None:
        auth["channel_data"] = channel_data
    return auth


def signed_url(server: Server, method: str, path: str, body: bytes = b"") -> str:
    query = {"auth_key": APP["key"], "auth_timestamp": str(int(time.time())), "auth_version": "1.0",
             "body_md5": hashlib.md5(body).hexdigest()}
    ordered = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
    signature = sign("\n".join((method, path, ordered)))
    return f"{server.http}{path}?{ordered}&auth_signature={signature}"


class Errors:
    def __init__(self) -> None:
        self.count = 0
        self.samples: list[str] = []

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.samples) < 20:
            self.samples.append(text)


async def open_client(server: Server) -> tuple[ClientConnection, str]:
    ws = await connect(server.ws, compression=None, ping_interval=None, open_timeout=15, close_timeout=5,
                       max_size=None, proxy=None)
    frame = json.loads(await ws.recv())
    if frame.get("event") != "pusher:connection_established":
        raise AssertionError(f"expected connection_established, got {frame}")
    return ws, json.loads(frame["data"])["socket_id"]


async def expect(ws: ClientConnection, event: str, channel: str, timeout: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("event") == "pusher:error":
                raise AssertionError(f"pusher:error {frame}")
            if frame.get("event") == event and frame.get("channel") == channel:
                return frame  # type: ignore[no-any-return]


async def subscribe(ws: ClientConnection, socket_id: str, channel: str, user_id: str = "") -> None:
    data: dict[str, Any] = {"channel": channel}
    if channel.startswith("private-"):
        data.update(channel_auth(socket_id, channel))
    elif channel.startswith("presence-"):
        data.update(channel_auth(socket_id, channel, json.dumps({"user_id": user_id, "user_info": {}})))
    await ws.send(json.dumps({"event": "pusher:subscribe", "data": data}))
    await expect(ws, "pusher_internal:subscription_succeeded", channel)


def reset(ws: ClientConnection) -> None:
    """Drop the TCP connection with a RST, as a client whose network vanished or whose process was killed."""
    sock = ws.transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    ws.transport.abort()


async def silent_until_closed(ws: ClientConnection, errors: Errors) -> None:
    """Never answer pusher:ping: the server must close with 4201 within activity_timeout + pong_timeout."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(ACTIVITY_TIMEOUT + PONG_TIMEOUT + 4):
            # It still reads (what others publish to its channels), so the close frame is read at once rather
            # than stuck behind unread frames; it just never sends anything.
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:
                    pass
    except TimeoutError:
        errors.add(f"silent client still open after {time.monotonic() - started:.1f}s")
        reset(ws)
        return
    if ws.close_code != 4201:
        errors.add(f"silent client closed with {ws.close_code}, not 4201")


async def cycle(server: Server, i: int, errors: Errors, silent: set[asyncio.Task[None]],
                closes: Counter[str]) -> None:
    try:
        ws, socket_id = await open_client(server)
        kind = i % 3
        channel = (f"soak-{i % 50}", f"private-soak-{i % 50}", f"presence-soak-{i % 20}")[kind]
        await subscribe(ws, socket_id, channel, f"user-{i}")
        if kind:
            await ws.send(json.dumps({"event": "client-soak", "channel": channel, "data": {"i": i}}))
        if i % 100 == 99:
            closes["pong_timeout"] += 1
            task = asyncio.ensure_future(silent_until_closed(ws, errors))
            silent.add(task)
            task.add_done_callback(silent.discard)
        elif i % 10 >= 8:
            closes["reset"] += 1
            reset(ws)
        else:
            closes["clean"] += 1
            await ws.close()
    except Exception as exc:  # every failure is counted, the run goes on
        errors.add(f"cycle {i}: {type(exc).__name__}: {exc}")


async def churn(server: Server, cycles: int, concurrency: int, errors: Errors, closes: Counter[str],
                on_progress: Any = None) -> None:
    silent: set[asyncio.Task[None]] = set()
    queue = iter(range(cycles))
    done = 0

    async def worker() -> None:
        nonlocal done
        for i in queue:
            await cycle(server, i, errors, silent, closes)
            done += 1
            if on_progress is not None:
                on_progress(done)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if silent:
        await asyncio.gather(*list(silent))


async def settle(server: Server, fds: int, timeout: float = 20) -> tuple[int, int]:
    """Wait until the server has no connection left and its fds are back to ``fds``; (open, fds) at the end."""
    deadline = time.monotonic() + timeout
    while True:
        open_now = (await asyncio.to_thread(server.meter))["open_connections"]
        now = server.fds()
        if (open_now == 0 and now <= fds) or time.monotonic() > deadline:
            return open_now, now
        await asyncio.sleep(0.2)


# -- phase 2: mixed traffic ---------------------------------------------------------------------


class Subscriber:
    """A long-lived connection that checks every sequenced event it receives: none missed, repeated, reordered."""

    def __init__(self, ws: ClientConnection, channels: list[str], errors: Errors) -> None:
        self.ws = ws
        self.errors = errors
        self.last: dict[str, int] = {name: -1 for name in channels}
        self.received = 0
        self.client_events = 0
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                event = frame.get("event", "")
                if event == "seq":
                    n = json.loads(frame["data"])["n"]
                    channel = frame["channel"]
                    if n != self.last[channel] + 1:
                        self.errors.add(f"{channel}: got {n} after {self.last[channel]}")
                    self.last[channel] = n
                    self.received += 1
                elif event == "client-mixed":
                    self.client_events += 1
                elif event == "pusher:ping":
                    await self.ws.send(json.dumps({"event": "pusher:pong", "data": {}}))
                elif event == "pusher:error":
                    self.errors.add(f"subscriber got {frame}")
        except Exception as exc:
            self.errors.add(f"subscriber: {type(exc).__name__}: {exc}")


async def mixed(server: Server, seconds: float, errors: Errors, rss: list[tuple[float, int]],
                closes: Counter[str]) -> dict[str, Any]:
    public = [f"mixed-{n}" for n in range(4)]
    channels = [*public, "private-mixed", "presence-mixed"]
    subscribers: list[Subscriber] = []
    for n in range(12):
        ws, socket_id = await open_client(server)
        mine = [public[n % 4], public[(n + 1) % 4], "private-mixed", "presence-mixed"]
        for name in mine:
            await subscribe(ws, socket_id, name, f"resident-{n}")
        subscribers.append(Subscriber(ws, mine, errors))
    sent: Counter[str] = Counter()
    stop = asyncio.Event()
    stats: Counter[str] = Counter()
    started = time.monotonic()

    async def publisher(session: aiohttp.ClientSession) -> None:
        n = 0
        while not stop.is_set():
            name = channels[n % len(channels)]
            if n % 5 == 4:  # every fifth through /batch_events, two channels at once
                other = channels[(n + 1) % len(channels)]
                batch = [{"channel": c, "name": "seq", "data": json.dumps({"n": sent[c]})} for c in (name, other)]
                body = json.dumps({"batch": batch}).encode()
                path = f"/apps/{APP['id']}/batch_events"
                targets = [name, other]
            else:
                body = json.dumps({"name": "seq", "channels": [name], "data": json.dumps({"n": sent[name]})}).encode()
                path = f"/apps/{APP['id']}/events"
                targets = [name]
            async with session.post(signed_url(server, "POST", path, body), data=body,
                                    headers={"Content-Type": "application/json"}) as response:
                if response.status != 200:
                    errors.add(f"publish {response.status}: {await response.text()}")
                else:
                    for target in targets:
                        sent[target] += 1
                    stats["publishes"] += 1
            n += 1
            await asyncio.sleep(0.05)

    async def reader(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            for path in (f"/apps/{APP['id']}/channels", f"/apps/{APP['id']}/channels/presence-mixed/users"):
                async with session.get(signed_url(server, "GET", path)) as response:
                    if response.status != 200:
                        errors.add(f"read {path}: {response.status}")
                    stats["reads"] += 1
            await asyncio.sleep(1.0)

    async def talker() -> None:  # client events from one resident to the others on private-mixed
        while not stop.is_set():
            await subscribers[0].ws.send(json.dumps({"event": "client-mixed", "channel": "private-mixed",
                                                     "data": {"t": time.time()}}))
            stats["client_events"] += 1
            await asyncio.sleep(0.2)

    async def visitors() -> None:  # presence members joining and leaving, plus plain churn
        i = 1_000_000
        while not stop.is_set():
            try:
                ws, socket_id = await open_client(server)
                await subscribe(ws, socket_id, "presence-mixed", f"visitor-{i}")
                await asyncio.sleep(random.random() * 0.5)
                await ws.close()
                stats["visitors"] += 1
            except Exception as exc:
                errors.add(f"visitor: {type(exc).__name__}: {exc}")
            await cycle(server, i, errors, set(), closes)
            stats["churn_cycles"] += 1
            i += 1

    async def sampler() -> None:
        while not stop.is_set():
            rss.append((time.monotonic() - started, server.rss_kib()))
            await asyncio.sleep(max(1.0, seconds / 100))

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.ensure_future(t) for t in (publisher(session), reader(session), talker(), visitors(),
                                                    visitors(), sampler())]
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
    await asyncio.sleep(1.0)  # the last events in flight
    for sub in subscribers:
        for name, last in sub.last.items():
            if last + 1 != sent[name]:
                errors.add(f"subscriber got {last + 1} of {sent[name]} events on {name}")
    expected_client = stats["client_events"] * (len(subscribers) - 1)
    got_client = sum(s.client_events for s in subscribers[1:])
    if got_client != expected_client:
        errors.add(f"client events: {got_client} delivered of {expected_client}")
    for sub in subscribers:
        await sub.ws.close()
        sub.task.cancel()
    return {**stats, "deliveries": sum(s.received for s in subscribers), "client_event_deliveries": got_client}


# -- the run ------------------------------------------------------------------------------------


def commit() -> str:
    with contextlib.suppress(Exception):
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    return "unknown"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    errors = Errors()
    closes: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="vask-soak-") as workdir:
        server = Server(Path(workdir))
        try:
            warmup = min(2000, max(200, args.cycles // 20))
            await churn(server, warmup, args.concurrency, errors, Counter())
            open_now, _ = await settle(server, 10**9)
            await asyncio.sleep(1.0)
            base_rss, base_fds = server.rss_kib(), server.fds()
            started = time.monotonic()
            last_print = [started]

            def progress(done: int) -> None:
                if time.monotonic() - last_print[0] > 30:
                    last_print[0] = time.monotonic()
                    print(f"  churn: {done}/{args.cycles} cycles, RSS {server.rss_kib() / 1024:.1f} MiB, "
                          f"{errors.count} errors", file=sys.stderr, flush=True)

            await churn(server, args.cycles, args.concurrency, errors, closes, progress)
            churn_seconds = time.monotonic() - started
            open_now, end_fds = await settle(server, base_fds)
            await asyncio.sleep(1.0)
            end_rss = server.rss_kib()
            result: dict[str, Any] = {
                "machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()})",
                "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                "commit": commit(),
                "churn": {"cycles": args.cycles, "warmup_cycles": warmup, "concurrency": args.concurrency,
                          "seconds": round(churn_seconds, 1),
                          "cycles_per_second": round(args.cycles / churn_seconds, 1), "closes": dict(closes),
                          "rss_baseline_mib": round(base_rss / 1024, 2), "rss_end_mib": round(end_rss / 1024, 2),
                          "rss_growth_mib": round((end_rss - base_rss) / 1024, 2),
                          "fds_baseline": base_fds, "fds_end": end_fds, "open_connections_end": open_now},
            }
            if args.mixed_seconds > 0:
                rss: list[tuple[float, int]] = []
                mixed_closes: Counter[str] = Counter()
                stats = await mixed(server, args.mixed_seconds, errors, rss, mixed_closes)
                open_after, fds_after = await settle(server, base_fds)
                await asyncio.sleep(1.0)
                # The baseline is the first sample after a tenth of the run, once every buffer has grown.
                warm = next((kib for at, kib in rss if at >= args.mixed_seconds / 10), rss[0][1])
                after = server.rss_kib()
                result["mixed"] = {"seconds": args.mixed_seconds, **stats, "closes": dict(mixed_closes),
                                   "rss_warm_mib": round(warm / 1024, 2), "rss_end_mib": round(after / 1024, 2),
                                   "rss_growth_mib": round((after - warm) / 1024, 2),
                                   "rss_peak_mib": round(max(k for _, k in rss) / 1024, 2),
                                   "fds_end": fds_after, "open_connections_end": open_after}
            result["errors"] = errors.count
            result["error_samples"] = errors.samples
            result["server_log_errors"] = server.log_errors()[:20]
        finally:
            result_code = server.stop()
        result["server_exit"] = result_code
    return result


def verdict(result: dict[str, Any], rss_limit_mib: float) -> list[str]:
    problems = []
    if result["errors"]:
        problems.append(f"{result['errors']} errors")
    if result["server_log_errors"]:
        problems.append("errors in the server log")
    for phase in ("churn", "mixed"):
        if phase not in result:
            continue
        figures = result[phase]
        if figures["rss_growth_mib"] >= rss_limit_mib:
            problems.append(f"{phase}: RSS grew {figures['rss_growth_mib']} MiB (limit {rss_limit_mib})")
        if figures["fds_end"] > result["churn"]["fds_baseline"]:
            problems.append(f"{phase}: {figures['fds_end']} fds at the end, baseline {result['churn']['fds_baseline']}")
        if figures["open_connections_end"]:
            problems.append(f"{phase}: {figures['open_connections_end']} connections still open")
    if result["server_exit"] != 0:
        problems.append(f"server exited with {result['server_exit']}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cycles", type=int, default=100_000)
    parser.add_argument("--mixed-seconds", type=float, default=3600)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rss-limit-mib", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    problems = verdict(result, args.rss_limit_mib)
    result["pass"] = not problems
    result["problems"] = problems
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
