"""Malformed inputs against a real server (issue 14): at least 10,000 of them — broken HTTP requests and
upgrades, random and mutated WebSocket frames, bad Pusher JSON — then: the process is alive, its log holds no
traceback, and a normal client (pusher-http-python and a WebSocket subscriber) is still served.
VASK_FUZZ_INPUTS raises the count (`make reliability` runs 100,000)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import time
from typing import Any

from tests.integration.wsraw import RawSocket, frame, text, upgrade_request

APP = {"id": "1", "key": "fkey", "secret": "fsecret", "client_events": True}
INPUTS = int(os.environ.get("VASK_FUZZ_INPUTS", "10000"))

HTTP_SEEDS = [
    b"GET /app/fkey?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    b"POST /apps/1/events?auth_key=fkey&auth_timestamp=1&auth_version=1.0&auth_signature=00 HTTP/1.1\r\n"
    b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
    b'{"name":"e","channels":["a"],"data":"x"}',
    b"GET /apps/1/channels?filter_by_prefix=presence- HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /apps/1/batch_events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
]
MESSAGE_SEEDS = [
    {"event": "pusher:subscribe", "data": {"channel": "presence-a", "auth": "fkey:00",
                                          "channel_data": '{"user_id":"u"}'}},
    {"event": "pusher:signin", "data": {"auth": "fkey:00", "user_data": '{"id":"u"}'}},
    {"event": "client-x", "channel": "private-a", "data": {"a": [1, 2]}},
    {"event": "pusher:unsubscribe", "data": {"channel": "a"}},
    {"event": "pusher:subscribe", "data": '{"channel":"cache-a"}'},
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        kind = rng.randrange(5)
        pos = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif kind == 1:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 2:
            del out[pos:pos + rng.randint(1, 16)]
        elif kind == 3:
            out[pos:pos] = rng.choice([b"\r\n", b"\x00", b"%00", b"\xff\xfe", b"\\u0000", b"{", b"]", b"9" * 30])
        else:
            out[pos:pos] = out[:rng.randint(0, 64)]
    return bytes(out)


def send_quietly(host: str, port: int, data: bytes) -> None:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(data)
            sock.settimeout(0.02)
            with contextlib.suppress(TimeoutError, OSError):
                sock.recv(65536)
    except OSError:
        pass


def test_ten_thousand_malformed_inputs(server_factory: Any) -> None:
    server = server_factory([APP])
    host, port = server.host, server.port
    rng = random.Random(14)
    sent = {"http": 0, "frames": 0, "messages": 0}
    start = time.monotonic()
    # 1. Broken HTTP requests and upgrades, one connection each (20%).
    for _ in range(INPUTS // 5):
        send_quietly(host, port, mutate(rng, rng.choice(HTTP_SEEDS)))
        sent["http"] += 1
    # 2. Random and mutated frames after a good handshake; several per connection until the server closes (30%).
    valid = [text(json.dumps(m)) for m in MESSAGE_SEEDS] + [frame(0x9, b"p"), frame(0x8, b"\x03\xe8")]
    while sent["frames"] < INPUTS * 3 // 10:
        try:
            client = RawSocket(host, port, "/app/fkey?protocol=7", timeout=2)
        except OSError:
            continue
        try:
            for _ in range(5):
                junk = mutate(rng, rng.choice(valid)) if rng.random() < 0.7 else rng.randbytes(rng.randint(1, 40))
                client.send(junk)
                sent["frames"] += 1
        except OSError:
            pass
        client.close()
    # 3. Well-framed but malformed Pusher messages on long-lived connections (50%): each gets an answer.
    clients = [RawSocket(host, port, "/app/fkey?protocol=7") for _ in range(4)]
    for client in clients:
        client.pusher_ready()
    while sent["messages"] < INPUTS - sent["http"] - sent["frames"]:
        client = rng.choice(clients)
        raw = json.dumps(rng.choice(MESSAGE_SEEDS)).encode()
        bad = mutate(rng, raw)
        try:
            bad.decode()
        except UnicodeDecodeError:
            bad = bad.decode(errors="replace").encode()  # keep the text frame valid UTF-8: we want it answered
        try:
            client.send(text(bad))
        except OSError:  # closed by the server (e.g. a sign-in refused with 4009): use a fresh one
            clients.remove(client)
            clients.append(RawSocket(host, port, "/app/fkey?protocol=7"))
            clients[-1].pusher_ready()
        sent["messages"] += 1
        client.buffer = b""
        if sent["messages"] % 200 == 0:
            for other in clients:  # keep the server's outboxes drained
                try:
                    while other.read_frame(0.001) is not None:
                        pass
                except (TimeoutError, OSError):
                    pass
    total = sum(sent.values())
    print(f"{total} malformed inputs in {time.monotonic() - start:.1f}s: {sent}")
    assert total >= INPUTS
    # The server survived, said nothing alarming, and still serves a normal client.
    assert server.process.poll() is None
    subscriber = RawSocket(host, port, "/app/fkey?protocol=7")
    subscriber.pusher_ready()
    subscriber.send(text(json.dumps({"event": "pusher:subscribe", "data": {"channel": "after"}})))
    assert (subscriber.next_message() or {}).get("event") == "pusher_internal:subscription_succeeded"
    server.pusher().trigger("after", "still-here", {"ok": True})
    got = subscriber.next_message()
    assert got is not None and got["event"] == "still-here"
    time.sleep(0.3)
    log = "".join(server.output)
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    for client in clients:
        client.close()


def test_upgrade_request_bytes_alone_are_fine(server_factory: Any) -> None:
    # Sanity of the helper the fuzz mutates: the unmutated seed upgrades.
    server = server_factory([APP])
    with socket.create_connection((server.host, server.port), timeout=3) as sock:
        sock.sendall(upgrade_request(server.host, server.port, "/app/fkey?protocol=7"))
        assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
