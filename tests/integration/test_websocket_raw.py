"""The WebSocket protocol by hand: handshake checks and close codes, bad input, liveness, limits, hostile peers.

Expected behaviour comes from pusher-protocol.md §1 (frames, §1.5 close codes) and reliability.md §3.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from raw_helpers import (
    SOCKET_ID_RE,
    RawClient,
    assert_refused,
    connect_raw,
    data_of,
    http_exchange,
    open_ws,
    refused_code,
    signed,
    trigger_body,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus

APP = {"id": "424242", "key": "test-key", "secret": "test-secret", "client_events": True}
FAST = {"VASK_APP_CACHE_TTL": "0.1"}


@pytest.fixture
def server(server_factory: Any) -> Any:
    return server_factory([APP], env=FAST)


# -- opening the connection ----------------------------------------------------------------------


def test_connection_established_shape(server: Any) -> None:
    client = connect_raw(server, established=False)
    frame = client.recv()
    assert frame["event"] == "pusher:connection_established"
    assert "channel" not in frame
    assert isinstance(frame["data"], str), "data must be a JSON-encoded string"
    data = json.loads(frame["data"])
    assert re.match(SOCKET_ID_RE, data["socket_id"]), data
    assert data["activity_timeout"] == 120
    assert connect_raw(server).socket_id != data["socket_id"]


@pytest.mark.parametrize("query", ["protocol=4", "protocol=8", "protocol=abc"])
def test_unsupported_protocol_is_4007(server: Any, query: str) -> None:
    assert_refused(server, 4007, query=query)


@pytest.mark.parametrize("query", ["", "protocol=5", "protocol=6", "client=js&version=8.6.0&protocol=7"])
def test_supported_or_missing_protocol_is_accepted(server: Any, query: str) -> None:
    assert connect_raw(server, query=query).ping()


@pytest.mark.parametrize("key", ["no-such-key", "k" * 150])
def test_unknown_key_is_4001(server: Any, key: str) -> None:
    # A close frame's reason is at most 123 bytes (RFC 6455 §5.5): a long key must not leave the socket hanging.
    assert_refused(server, 4001, key=key)


def test_disabled_app_is_4003(server: Any) -> None:
    open_before = connect_raw(server)
    server.cli("apps", "disable", server.app.id)
    assert open_before.closed()[0] == 4003  # open connections follow the app record
    assert_refused(server, 4003)
    server.cli("apps", "enable", server.app.id)
    deadline = time.monotonic() + 5
    while refused_code(server) is not None:
        assert time.monotonic() < deadline, "the app stayed disabled"
        time.sleep(0.1)


def test_app_connection_quota_is_4004(server_factory: Any) -> None:
    server = server_factory([{**APP, "max_connections": 1}], env=FAST)
    first = connect_raw(server)
    assert_refused(server, 4004)
    first.close()
    deadline = time.monotonic() + 5
    while refused_code(server) == 4004:  # the slot is released once the close is processed
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_node_capacity_is_4100(server_factory: Any) -> None:
    server = server_factory([APP], env={"VASK_MAX_CONNECTIONS": "1"})
    first = connect_raw(server)
    assert_refused(server, 4100)
    assert first.ping()


def test_wrong_path_is_refused(server: Any) -> None:
    try:
        client = RawClient(open_ws(f"{server.ws_url}/foo"))
    except InvalidStatus as exc:
        assert exc.response.status_code == 404
    else:
        assert client.closed()[0] == 4005
    try:  # an empty key: an HTTP error, or an unknown app
        client = RawClient(open_ws(f"{server.ws_url}/app/"))
    except InvalidStatus as exc:
        assert exc.response.status_code in (400, 404)
    else:
        assert client.closed()[0] in (4001, 4005)


# -- bad input keeps the connection -------------------------------------------------------------


@pytest.mark.parametrize("payload", [
    "{not json", "[1, 2, 3]", '{"data": {}}', '"just a string"', "null", '{"event": 5}',
    '{"event": "pusher:no_such_thing", "data": {}}', '{"event": "pusher:subscribe", "data": "oops"}',
    '{"event": "pusher:subscribe", "data": {}}', "[" * 10_000 + "]" * 10_000,
])
def test_bad_text_frames_get_pusher_error(server: Any, payload: str) -> None:
    client = connect_raw(server)
    client.ws.send(payload)
    error = client.expect("pusher:error")
    assert data_of(error)["message"], error
    assert client.ping()["data"] == "{}"


def test_binary_frame_gets_pusher_error(server: Any) -> None:
    client = connect_raw(server)
    client.ws.send(b'{"event":"pusher:ping","data":{}}')
    assert client.expect("pusher:error")
    assert client.ping()


def test_oversize_frame_closes_1009_and_server_carries_on(server: Any) -> None:
    bystander = connect_raw(server)
    bystander.subscribe("calm")
    client = connect_raw(server)
    client.ws.send(json.dumps({"event": "pusher:ping", "data": {"pad": "x" * 70_000}}))
    assert client.closed()[0] == 1009
    assert bystander.ping()
    server.pusher().trigger("calm", "still-here", {})
    assert bystander.expect("still-here")
    assert connect_raw(server).ping()


def test_pings(server: Any) -> None:
    client = connect_raw(server)
    pong = client.ping()
    assert pong == {"event": "pusher:pong", "data": "{}"}
    assert client.ws.ping(b"hello").wait(5), "no pong to a WebSocket ping control frame"


# -- subscriptions and client events ---------------------------------------------------------------


def test_subscription_errors(server: Any) -> None:
    client = connect_raw(server)
    assert client.subscribe("news") == {"event": "pusher_internal:subscription_succeeded", "data": "{}",
                                        "channel": "news"}
    client.subscribe("news", expect=False)
    assert data_of(client.expect("pusher:error"))["message"] == "Existing subscription to channel news"
    for bad in ("bad channel!", "x" * 201, "#secret", "", "naïve"):
        client.subscribe(bad, expect=False)
        assert data_of(client.expect("pusher:error"))["message"], bad
    client.subscribe("private-x", expect=False)
    assert data_of(client.expect("pusher:error"))["message"] == "Auth info required to subscribe to private-x"
    client.subscribe("private-y", "test-key:" + "0" * 64, expect=False)
    assert data_of(client.expect("pusher:error"))["message"].startswith("Invalid signature")
    client.subscribe("presence-z", expect=False)
    assert "Auth info required" in data_of(client.expect("pusher:error"))["message"]
    client.nothing(0.2, ignore=("pusher:subscription_error",))  # Soketi-style extra frames are allowed
    assert client.ping()


def test_unsubscribe_and_signin_failures(server: Any) -> None:
    client = connect_raw(server)
    client.subscribe("feed")
    client.send("pusher:unsubscribe", {"channel": "feed"})
    assert client.ping()  # the unsubscribe is processed before the pong
    server.pusher().trigger("feed", "after", {})
    client.nothing(0.3)
    client.send("pusher:signin", {"auth": f"{APP['key']}:{'0' * 64}", "user_data": '{"id": "mallory"}'})
    # A bad sign-in closes the connection with 4009 (the close reason must fit in 123 bytes).
    assert client.closed(timeout=3)[0] == 4009
    client = connect_raw(server)
    client.signin(APP["key"], APP["secret"], "alice")
    client.subscribe("#server-to-user-bob", expect=False)  # only for the signed-in user
    assert client.expect("pusher:error")


def test_client_events(server: Any) -> None:
    a, b, outsider = connect_raw(server), connect_raw(server), connect_raw(server)
    for client in (a, b):
        client.subscribe_private("private-chat", APP["key"], APP["secret"])
    a.send("client-typing", {"who": "a", "nested": [1, {"x": None}]}, "private-chat")
    frame = b.expect("client-typing")
    assert frame["channel"] == "private-chat"
    assert data_of(frame) == {"who": "a", "nested": [1, {"x": None}]}
    assert "user_id" not in frame
    a.nothing(0.3)  # not echoed to the sender
    outsider.send("client-typing", {}, "private-chat")  # not subscribed
    assert outsider.expect("pusher:error")
    outsider.subscribe("public")
    outsider.send("client-typing", {}, "public")  # public channels take no client events
    assert outsider.expect("pusher:error")
    b.nothing(0.3)
    a.send("not-client-prefixed", {}, "private-chat")
    assert a.expect("pusher:error")
    # above 10 per second: rejected with 4301 frames, the connection stays
    for i in range(15):
        a.send("client-burst", {"i": i}, "private-chat")
    error = a.expect("pusher:error")
    assert data_of(error)["code"] == 4301
    assert a.ping()


def test_client_events_disabled_for_app(server_factory: Any) -> None:
    server = server_factory([{**APP, "client_events": False}])
    a, b = connect_raw(server), connect_raw(server)
    for client in (a, b):
        client.subscribe_private("private-chat", APP["key"], APP["secret"])
    a.send("client-x", {}, "private-chat")
    assert a.expect("pusher:error")
    b.nothing(0.3)


def test_presence_member_added_and_removed(server: Any) -> None:
    key, secret = APP["key"], APP["secret"]
    first = connect_raw(server)
    first.subscribe_presence("presence-room", key, secret, "u1", {"name": "One"})
    second = connect_raw(server)
    joined = data_of(second.subscribe_presence("presence-room", key, secret, "u2", {"name": "Two"}))
    assert joined["presence"]["count"] == 2
    assert joined["presence"]["hash"] == {"u1": {"name": "One"}, "u2": {"name": "Two"}}
    added = first.expect("pusher_internal:member_added", "presence-room")
    assert isinstance(added["data"], str)
    assert json.loads(added["data"]) == {"user_id": "u2", "user_info": {"name": "Two"}}
    second_tab = connect_raw(server)
    second_tab.subscribe_presence("presence-room", key, secret, "u2", {"name": "Two"})
    second.close()
    first.nothing(0.3)  # u2 is still there in another tab: neither added nor removed
    second_tab.send("client-hi", {"x": 1}, "presence-room")
    assert first.expect("client-hi")["user_id"] == "u2"
    second_tab.close()
    removed = first.expect("pusher_internal:member_removed", "presence-room")
    assert json.loads(removed["data"]) == {"user_id": "u2"}


# -- liveness and authorized connections -------------------------------------------------------------


LIVENESS = {"VASK_PONG_TIMEOUT": "1", "VASK_SWEEP_INTERVAL": "0.2"}


def test_server_pings_idle_client_and_closes_silent_one_with_4201(server_factory: Any) -> None:
    server = server_factory([{**APP, "activity_timeout": 1}], env=LIVENESS)
    silent, polite = connect_raw(server), connect_raw(server)
    assert silent.established["activity_timeout"] == 1
    pings: list[dict[str, Any]] = []
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            try:
                frame = polite.recv(0.1)
            except TimeoutError:
                continue
            if frame["event"] == "pusher:ping":
                pings.append(frame)
                polite.send("pusher:pong", {})

    answering = threading.Thread(target=answer, daemon=True)
    answering.start()
    ping = silent.expect("pusher:ping", timeout=4)
    assert data_of(ping) in ({}, None), ping
    code, _ = silent.closed(timeout=4)
    assert code == 4201
    time.sleep(1.5)  # longer than the pong timeout: the polite client answered every ping
    stop.set()
    answering.join(2)
    assert pings, "the idle polite client was never pinged"
    assert polite.ping()


def test_authorized_connections_close_4009_without_signin(server_factory: Any) -> None:
    app = {**APP, "user_authentication_required": True, "user_authentication_timeout": 1}
    server = server_factory([app])
    anonymous, signed_in, private = connect_raw(server), connect_raw(server), connect_raw(server)
    signed_in.signin(APP["key"], APP["secret"], "user-1")
    private.subscribe_private("private-doc", APP["key"], APP["secret"])
    code, frames = anonymous.closed(timeout=4)
    assert code == 4009, (code, frames)
    time.sleep(0.5)
    assert signed_in.ping()
    assert private.ping()


# -- slow consumers and hostile peers ------------------------------------------------------------------


def test_slow_consumer_is_closed_4100(server_factory: Any) -> None:
    server = server_factory([{**APP, "max_event_data_bytes": 20_000}], env={"VASK_MAX_OUTBOX_BYTES": "65536"})
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((server.host, server.port))
    slow = connect_raw(server, sock=sock, max_queue=1)  # reads one message, then nothing
    slow.subscribe("firehose")
    healthy = connect_raw(server)
    healthy.subscribe("firehose")
    received: list[int] = []

    def read_all() -> None:
        while True:
            try:
                frame = healthy.recv(3)
            except (TimeoutError, ConnectionClosed):
                return
            if frame["event"] == "big":
                received.append(1)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    p = server.pusher()
    body = trigger_body(["firehose"], "big", "z" * 19_000)
    published = 0
    for published in range(1, 601):  # up to 11 MB for a client that reads nothing
        response = signed(server, "POST", f"/apps/{APP['id']}/events", body)
        assert response.status_code == 200, response.text
        if published % 20 == 0 and p.channel_info("firehose", ["subscription_count"])["subscription_count"] == 1:
            break
    else:
        raise AssertionError("the slow consumer was not dropped after 11 MB")
    code, _ = slow.closed(timeout=10)  # its buffered events, then the close frame
    assert code == 4100
    reader.join(10)
    assert len(received) == published, "the healthy subscriber must get every event"
    assert healthy.ping()


def test_garbage_connections_do_not_hurt_the_server(server: Any) -> None:
    half_open: list[socket.socket] = []

    def random_bytes(_: int) -> str:
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(os.urandom(2048))
            with contextlib.suppress(OSError):
                sock.recv(1024)
        return "random"

    def open_half(_: int) -> str:
        sock = socket.create_connection((server.host, server.port), timeout=5)
        sock.sendall(b"GET /app/test-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgr")
        half_open.append(sock)
        return "half"

    def huge_body(_: int) -> str:
        head = (f"POST /apps/{APP['id']}/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {2 * 1024 * 1024}\r\n\r\n").encode()
        return http_exchange(server, head, 32, b"a" * 65536).split(b"\r\n")[0].decode()

    def huge_headers(_: int) -> str:
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 40_000 + b"\r\n\r\n"
        return http_exchange(server, head).split(b"\r\n")[0].decode()

    def garbage_frames(_: int) -> str:
        client = connect_raw(server)
        client.ws.socket.sendall(b"\xff" + os.urandom(511))  # FIN, RSV1-3 and opcode 15: never valid
        code, _ = client.closed()
        return f"ws {code}"

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(random_bytes, range(50)))
        results += pool.map(open_half, range(50))
        results += pool.map(huge_body, range(40))
        results += pool.map(huge_headers, range(40))
        results += pool.map(garbage_frames, range(20))
    assert len(results) == 200
    assert {r.split(" ")[:2] == ["HTTP/1.1", "413"] for r in results[100:140]} == {True}, set(results[100:140])
    assert {r.split(" ")[:2] == ["HTTP/1.1", "431"] for r in results[140:180]} == {True}, set(results[140:180])
    assert set(results[180:]) == {"ws 1002"}, results[180:]
    # While 50 half-open connections still hang: the server answers.
    response = requests.get(f"{server.http_url}/", timeout=5)
    assert (response.status_code, response.text) == (200, "OK")
    client = connect_raw(server)
    client.subscribe("after-the-storm")
    server.pusher().trigger("after-the-storm", "ok", {})
    assert client.expect("ok")
    for sock in half_open:
        sock.close()
    assert server.process.poll() is None
