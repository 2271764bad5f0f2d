"""A subscriber that never reads while megabytes are fanned out to it (issue 14): it is closed with 4100, the
server's RSS stays bounded, and the other subscribers' p99 latency stays within 2x of a run without it.
CI sends 10 MB; VASK_SLOW_CONSUMER_MB=50 (`make reliability`) sends 50 MB."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from tests.integration.wsraw import RawSocket, text

APP = {"id": "1", "key": "skey", "secret": "ssecret"}
MEGABYTES = int(os.environ.get("VASK_SLOW_CONSUMER_MB", "10"))
EVENT_BYTES = 9_000  # under the 10 KB event limit
BATCH = 10
READERS = 3


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Reader(threading.Thread):
    """A subscriber that reads everything and records each event's latency (receive time - publish time)."""

    def __init__(self, server: Any, channel: str) -> None:
        super().__init__(daemon=True)
        self.client = RawSocket(server.host, server.port, "/app/skey?protocol=7", timeout=30)
        self.client.pusher_ready()
        self.client.send(text(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}})))
        assert (self.client.next_message() or {}).get("event") == "pusher_internal:subscription_succeeded"
        self.latencies: list[float] = []
        self.expected = 0

    def run(self) -> None:
        while len(self.latencies) < self.expected:
            try:
                message = self.client.next_message(30)
            except TimeoutError:
                return
            if message is None:
                return
            if message.get("event") == "tick":
                self.latencies.append(time.time() - json.loads(str(message["data"]))["t"])


def fan_out(server: Any, channel: str, slow: bool) -> dict[str, Any]:
    readers = [Reader(server, channel) for _ in range(READERS)]
    consumer = None
    if slow:
        sock_client = RawSocket(server.host, server.port, "/app/skey?protocol=7", rcvbuf=4096)
        sock_client.pusher_ready()
        sock_client.send(text(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}})))
        consumer = sock_client  # from here on it never reads
    events = MEGABYTES * 1_000_000 // EVENT_BYTES
    for reader in readers:
        reader.expected = events
        reader.start()
    pusher = server.pusher()
    pad = "x" * (EVENT_BYTES - 40)
    base_rss = rss_kib(server.process.pid)
    peak = base_rss
    for start in range(0, events, BATCH):
        batch = [{"channel": channel, "name": "tick", "data": json.dumps({"t": time.time(), "p": pad})}
                 for _ in range(min(BATCH, events - start))]
        pusher.trigger_batch(batch)
        if start % (BATCH * 20) == 0:
            peak = max(peak, rss_kib(server.process.pid))
            time.sleep(0.005)  # a steady stream, not one burst: latency, not queueing, is measured
    for reader in readers:
        reader.join(60)
    latencies = sorted(x for r in readers for x in r.latencies)
    result: dict[str, Any] = {
        "events": events, "received": len(latencies), "rss_base_mib": base_rss / 1024,
        "rss_peak_mib": max(peak, rss_kib(server.process.pid)) / 1024,
        "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }
    if consumer is not None:
        code = None
        errors = []
        frames_read = 0
        ended = "close frame"
        while True:  # now read what it was sent: the pusher:error and the close frame come at the end
            try:
                got = consumer.read_frame(5)
            except (TimeoutError, OSError) as exc:
                ended = repr(exc)
                break
            if got is None:
                ended = "TCP closed"
                break
            frames_read += 1
            if got.opcode == 0x8:
                code = int.from_bytes(got.payload[:2], "big")
                break
            if got.opcode == 0x1 and b'"pusher:error"' in got.payload:
                errors.append(json.loads(got.payload))
        result["close_code"] = code
        result["consumer"] = f"read {frames_read} frames, ended by {ended}"
        result["errors"] = errors
        consumer.close()
    for reader in readers:
        reader.client.close()
    return result


def test_slow_consumer_is_cut_off_and_others_keep_their_latency(server_factory: Any) -> None:
    # close_timeout long enough that the consumer can read its close frame after the run.
    server = server_factory([APP], env={"VASK_CLOSE_TIMEOUT": "60"})
    fan_out(server, "warmup", slow=False) if MEGABYTES >= 50 else None
    without = fan_out(server, "calm", slow=False)
    with_slow = fan_out(server, "stormy", slow=True)
    print(f"slow consumer, {MEGABYTES} MB: without {json.dumps(without)}; with {json.dumps(with_slow)}")
    assert without["received"] == READERS * without["events"]
    assert with_slow["received"] == READERS * with_slow["events"], "a reading subscriber lost events"
    assert with_slow["close_code"] == 4100, with_slow
    assert with_slow["errors"] and with_slow["errors"][-1]["data"]["code"] == 4100
    # Bounded: the consumer's backlog is cut at max_outbox_bytes (1 MiB), not the MEGABYTES sent.
    assert with_slow["rss_peak_mib"] - without["rss_base_mib"] < 48, with_slow
    # 2x the calm run's p99, plus 5 ms of absolute slack for timer noise on a shared 2-core machine.
    assert with_slow["p99_ms"] <= 2 * without["p99_ms"] + 5, (without, with_slow)
