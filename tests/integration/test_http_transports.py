"""pusher-js' HTTP transports spoken raw against the real server: framing, bounds, clear errors, expiry, churn.

What pusher-js sends is covered with pusher-js itself (test_pusher_js_http.py); here the requests it never
sends, and the limits: a bad session id, a replayed or stale xhr_send, oversized bodies, a poller that stops
polling (4100, like a WebSocket that stops reading), sessions nobody receives on (expired), CORS.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from http_transport_helpers import Poller, lines, messages, new_session_path, post, send
from js_helpers import wait_until

TOKEN = "http-transport-token"
ADMIN_RE = re.compile(r"admin API listening on http://([^:\s]+):(\d+)")


def open_connections(server: Any) -> int:
    """vask_connections from the admin API: what the meter counts (released when a session ends)."""
    found = next(ADMIN_RE.search(line) for line in server.output if ADMIN_RE.search(line))
    request = urllib.request.Request(f"http://{found.group(1)}:{found.group(2)}/metrics",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return int(float(next(line.split()[1] for line in text.splitlines() if line.startswith("vask_connections "))))


def test_a_polling_session_is_a_pusher_connection(server: Any) -> None:
    poller = Poller(server)
    assert re.fullmatch(r"\d+\.\d+", poller.socket_id)
    poller.subscribe("news")
    api = server.pusher()
    assert api.channel_info("news", ["subscription_count"])["subscription_count"] == 1
    api.trigger("news", "story", {"n": 1})
    api.trigger("news", "story", {"n": 2})
    got = poller.poll()
    assert [(m["event"], json.loads(m["data"])) for m in got] == [("story", {"n": 1}), ("story", {"n": 2})]
    # a held poll is answered as soon as something arrives
    answer: list[Any] = []
    waiting = threading.Thread(target=lambda: answer.append(poller.poll()))
    waiting.start()
    time.sleep(0.3)
    api.trigger("news", "story", {"n": 3})
    waiting.join(5)
    assert [json.loads(m["data"]) for m in answer[0]] == [{"n": 3}]
    # client frames go through the same handler as a WebSocket's: a bad one gets a pusher:error
    assert poller.send({"event": "pusher:nonsense"})[0] == 204
    assert poller.poll()[0]["event"] == "pusher:error"
    assert poller.send({"event": "pusher:ping", "data": {}})[0] == 204
    assert poller.poll()[0]["event"] == "pusher:pong"


def test_streaming_frames_and_a_second_stream_takes_over(server: Any) -> None:
    path = new_session_path(server.app.key)
    first = http.client.HTTPConnection(server.host, server.port, timeout=5)
    first.request("POST", f"{path}/xhr_streaming?protocol=7&t=1&n=1", headers={"Origin": "http://app.example"})
    stream = first.getresponse()
    assert stream.status == 200
    assert stream.getheader("X-Accel-Buffering") == "no"  # nginx must not buffer it
    assert stream.getheader("Access-Control-Allow-Origin") == "http://app.example"
    assert stream.getheader("Transfer-Encoding") == "chunked"
    assert stream.readline() == b"o\n"
    established = messages(stream.readline().decode())
    assert established[0]["event"] == "pusher:connection_established"
    assert send(server, path, {"event": "pusher:subscribe", "data": {"channel": "live"}})[0] == 204
    assert messages(stream.readline().decode())[0]["event"] == "pusher_internal:subscription_succeeded"
    # pusher-js opens a new stream for the same session (after 256 KiB): the first one is ended, not the session
    second = http.client.HTTPConnection(server.host, server.port, timeout=5)
    second.request("POST", f"{path}/xhr_streaming?protocol=7&t=1&n=3")
    resumed = second.getresponse()
    assert stream.read() == b""  # the old stream ended cleanly
    server.pusher().trigger("live", "tick", {"i": 1})
    got = messages(resumed.readline().decode())
    assert [(m["event"], m["channel"]) for m in got] == [("tick", "live")]
    first.close()
    second.close()


def test_bad_requests_get_clear_http_errors(server: Any) -> None:
    key = server.app.key
    status, _, body = post(server, f"/pusher/app/{key}/1/ab.cd/xhr")
    assert status == 404 and b"Invalid session id" in body
    status, _, body = post(server, f"/pusher/app/{key}/1/{'a' * 40}/xhr_streaming")
    assert status == 404 and b"Invalid session id" in body
    status, _, body = post(server, f"/pusher/app/{key}/1/nosuchse/xhr_send", b'["{}"]')
    assert status == 404 and b"Session not found" in body
    status, headers, _ = post(server, f"/pusher/app/{key}/1/abcdefgh/xhr", method="GET")
    assert status == 405 and headers["allow"] == "OPTIONS, POST"
    # wrong key: refused as pusher-js reads a refusal (the error, then the close code), not silently
    status, _, body = post(server, "/pusher/app/no-such-key/1/abcdefgh/xhr")
    assert status == 200
    first, error, close = lines(body)
    assert first == "o" and messages(error)[0]["event"] == "pusher:error"
    assert json.loads(close[1:]) == [4001, "App key no-such-key does not exist."]
    status, _, body = post(server, f"/pusher/app/{key}/1/abcdefgh/xhr?protocol=99")
    assert json.loads(lines(body)[-1][1:])[0] == 4007

    poller = Poller(server)
    for bad, why in ((b"", b"Payload expected"), (b"[1]", b"array of strings"), (b"{", b"Broken JSON")):
        status, _, body = post(server, f"{poller.path}/xhr_send", bad)
        assert status == 400 and why in body, (bad, status, body)
    status, _, body = post(server, f"{poller.path}/xhr_send", b"[]", number=0)  # n=0 is accepted once...
    assert status == 204
    status, _, body = post(server, f"{poller.path}/xhr_send", b"[]", number=0)  # ...and refused when replayed
    assert status == 409 and b"Replayed xhr_send" in body
    for n in range(1000, 1032):
        assert post(server, f"{poller.path}/xhr_send", b"[]", number=n)[0] == 204
    status, _, body = post(server, f"{poller.path}/xhr_send", b"[]", number=999)  # behind the last 32
    assert status == 409 and b"Out-of-order xhr_send" in body
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    conn.request("POST", f"{poller.path}/xhr_send?t=1", body=b"[]")
    response = conn.getresponse()
    assert response.status == 400 and b"n= request counter" in response.read()
    conn.close()
    # a message over max_ws_frame_bytes: 413, and the connection is closed with 4200 as a WebSocket would be
    big = json.dumps({"event": "client-x", "channel": "private-a", "data": "x" * 70_000})
    status, _, body = post(server, f"{poller.path}/xhr_send", json.dumps([big]).encode(), number=5000)
    assert status == 413
    closing = lines(poller.poll_raw()[2])
    assert json.loads(closing[-1][1:]) == [4200, "Message too large"]
    status, _, body = post(server, f"{poller.path}/xhr_send", b"[]")
    assert status == 404  # the session is gone
    # a body over max_http_body_bytes is cut off while it is read
    status, _, body = post(server, f"{Poller(server).path}/xhr_send", b"[" + b" " * 1_100_000 + b"]")
    assert status == 413


def test_cors_preflight(server: Any) -> None:
    path = new_session_path(server.app.key)
    status, headers, _ = post(server, f"{path}/xhr_send", method="OPTIONS", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert status == 204
    assert headers["access-control-allow-origin"] == "https://shop.example"
    assert "POST" in headers["access-control-allow-methods"]
    assert headers["access-control-allow-headers"] == "content-type"
    poller = Poller(server, headers={"Origin": "https://shop.example"})
    status, headers, _ = poller.send({"event": "pusher:ping", "data": {}})
    assert status == 204 and headers["access-control-allow-origin"] == "https://shop.example"


@pytest.fixture
def tight(server_factory: Any) -> Any:
    """A server with short HTTP-session timeouts, a small outbox bound and the admin API (for the meter)."""
    return server_factory(None, env={"VASK_HTTP_SESSION_TIMEOUT": "1", "VASK_HTTP_HEARTBEAT_INTERVAL": "1",
                                     "VASK_SWEEP_INTERVAL": "0.2", "VASK_MAX_OUTBOX_BYTES": "20000",
                                     "VASK_ADMIN_TOKEN": TOKEN, "VASK_ADMIN_PORT": "0"})


def test_a_poller_that_stops_polling_is_closed_with_4100(tight: Any) -> None:
    poller = Poller(tight)
    poller.subscribe("firehose")
    api = tight.pusher()
    for i in range(30):  # ~30 KiB queued for a client that does not come back for it
        api.trigger("firehose", "blob", {"i": i, "pad": "x" * 1000})
    body = lines(poller.poll_raw()[2])
    reason = "Client too slow: it does not read its messages"
    assert messages(body[0])[-1] == {"event": "pusher:error", "data": {"code": 4100, "message": reason}}
    assert json.loads(body[-1][1:]) == [4100, reason]
    assert len(b"".join(line.encode() for line in body)) < 2000  # the unread backlog was dropped, not sent
    assert not api.channel_info("firehose").get("occupied")


def test_heartbeats_and_expiry(tight: Any) -> None:
    poller = Poller(tight)
    poller.subscribe("watched")
    assert open_connections(tight) == 1
    started = time.monotonic()
    status, _, body = poller.poll_raw()  # nothing to say: answered with a heartbeat after ~1 s
    assert (status, body) == (200, b"h\n") and time.monotonic() - started >= 0.8
    # no receive request for longer than http_session_timeout: the session is gone, its channel vacated,
    # the meter's connection released
    api = tight.pusher()
    wait_until(lambda: not api.channel_info("watched").get("occupied"), timeout=5, what="session expired")
    assert open_connections(tight) == 0
    status, _, body = poller.send({"event": "pusher:ping", "data": {}})
    assert status == 404 and b"Session not found" in body


def _rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


def test_session_churn_returns_to_baseline(tight: Any) -> None:
    # sessions opened, subscribed and abandoned (as when tabs close): all expire, the process does not grow
    api = tight.pusher()

    def wave(count: int) -> None:
        for i in range(count):
            Poller(tight).subscribe(f"churn-{i % 20}")
        wait_until(lambda: open_connections(tight) == 0, timeout=10, what="every session expired")
        wait_until(lambda: not api.channels_info(prefix_filter="churn-")["channels"], timeout=5,
                   what="every channel vacated")

    wave(100)  # warm-up: caches, allocator arenas
    baseline = _rss_kib(tight.process.pid)
    for _ in range(3):
        wave(100)
    grown = _rss_kib(tight.process.pid) - baseline
    assert grown < 4096, f"RSS grew by {grown} KiB over 300 sessions"


def test_an_http_1_0_stream_is_unchunked_and_ends_by_closing(server: Any) -> None:
    # nginx speaks HTTP/1.0 upstream unless told proxy_http_version 1.1: no chunked encoding there
    path = new_session_path(server.app.key)
    with socket.create_connection((server.host, server.port), timeout=5) as raw:
        raw.sendall(f"POST {path}/xhr_streaming?protocol=7&t=1&n=1 HTTP/1.0\r\nContent-Length: 0\r\n\r\n".encode())
        data = b""
        while data.count(b"\n") < 2 or b"connection_established" not in data:
            data += raw.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding" not in head and b"Connection: close" in head
        assert body.startswith(b"o\na[")


def test_webhooks_for_an_http_session(server_factory: Any) -> None:
    from webhook_helpers import FAST_ENV, Receiver, add_webhook, names, verify_all

    server = server_factory(None, env={**FAST_ENV, "VASK_HTTP_SESSION_TIMEOUT": "1", "VASK_SWEEP_INTERVAL": "0.2"})
    receiver = Receiver()
    try:
        add_webhook(server, receiver.url())
        poller = Poller(server)
        channel_data = json.dumps({"user_id": "u1"})
        auth = server.pusher().authenticate("presence-hooks", poller.socket_id, {"user_id": "u1"})
        status, _, _ = poller.send({"event": "pusher:subscribe", "data": {
            "channel": "presence-hooks", "auth": auth["auth"], "channel_data": channel_data}})
        assert status == 204
        assert poller.poll()[0]["event"] == "pusher_internal:subscription_succeeded"
        receiver.wait_events(lambda e: {"channel_occupied", "member_added"} <= set(names(e)))
        # the client goes away without a word (a closed tab): the session expires, the webhooks follow
        events = receiver.wait_events(lambda e: {"channel_vacated", "member_removed"} <= set(names(e)), timeout=8)
        assert [e.get("user_id") for e in events if e["name"] in ("member_added", "member_removed")] == ["u1", "u1"]
        verify_all(server.app, receiver)
    finally:
        receiver.close()
