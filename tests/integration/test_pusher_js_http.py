"""pusher-js 8 (Node) over its HTTP fallback transports: xhr_streaming and xhr_polling against the real server.

The WebSocket transports are switched off (``enabledTransports``), or pointed at a closed port so pusher-js falls
back by itself; ``httpHost``/``httpPort`` point at Vask, as docs/http-fallback.md tells apps to configure.
Every scenario runs on both transports: an HTTP session is a full Pusher connection.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from cluster_helpers import cluster_factory_fixture  # noqa: F401
from js_helpers import (  # noqa: F401
    JsClient,
    JsHarness,
    error_code,
    js_fixture,
    master_key_b64,
    node_env_fixture,
    wait_subscription_count,
    wait_until,
)

pytestmark = pytest.mark.node

TRANSPORTS = ["xhr_streaming", "xhr_polling"]


def http_options(server: Any, transport: str) -> dict[str, Any]:
    return {"httpHost": server.host, "httpPort": server.port, "httpsPort": server.port,
            "enabledTransports": [transport]}


def http_client(js: JsHarness, server: Any, transport: str, **kwargs: Any) -> JsClient:
    client = js.client(server, connect=False, **kwargs)
    client.connect(**http_options(server, transport))
    assert client.state()["transport"] == transport
    return client


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_public_channel(server: Any, js: JsHarness, transport: str) -> None:
    client = http_client(js, server, transport)
    client.subscribe("news")
    wait_subscription_count(server, "news", 1)
    api = server.pusher()
    for n in range(5):
        api.trigger("news", "story", {"n": n})
    client.wait_count(5, type="event", channel="news", event="story")
    assert client.received("news", "story") == [{"n": n} for n in range(5)]  # in order, once each
    # the HTTP API sees it like any connection
    assert api.channel_info("news", ["subscription_count"])["subscription_count"] == 1
    client.unsubscribe("news")
    wait_until(lambda: not api.channel_info("news").get("occupied"), what="news vacated")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_private_channel_and_client_events(server: Any, js: JsHarness, transport: str) -> None:
    ws_peer = js.client(server, name="ws")  # a WebSocket client on the same channel
    http = http_client(js, server, transport, name="http")
    for client in (ws_peer, http):
        client.subscribe("private-room")
        client.bind("private-room", "client-typing")
    server.pusher().trigger("private-room", "server-event", {"x": 1})
    assert http.wait_for(type="event", channel="private-room", event="server-event")["data"] == {"x": 1}
    # client events both ways between an HTTP session and a WebSocket; never back to the sender
    assert http.trigger("private-room", "client-typing", {"from": "http"})
    assert ws_peer.wait_for(type="bound", event="client-typing")["data"] == {"from": "http"}
    assert ws_peer.trigger("private-room", "client-typing", {"from": "ws"})
    assert http.wait_for(type="bound", event="client-typing")["data"] == {"from": "ws"}
    http.sync()
    ws_peer.sync()
    assert [e["data"] for e in http.find(type="bound", event="client-typing")] == [{"from": "ws"}]
    # the socket_id exclusion of the HTTP API works for an HTTP session's socket id
    server.pusher().trigger("private-room", "server-event", {"x": 2}, socket_id=http.socket_id)
    ws_peer.wait_for(lambda e: e["data"]["x"] == 2, type="event", channel="private-room", event="server-event")
    http.sync()
    assert [e["data"] for e in http.find(type="event", event="server-event")] == [{"x": 1}]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_presence_and_signin(server_factory: Any, js: JsHarness, transport: str) -> None:
    server = server_factory(None, env={"VASK_HTTP_SESSION_TIMEOUT": "1", "VASK_SWEEP_INTERVAL": "0.2"})
    ann = js.client(server, name="ann", presence={"user_id": "ann", "user_info": {"n": "Ann"}})
    bob = http_client(js, server, transport, name="bob", presence={"user_id": "bob", "user_info": {"n": "Bob"}},
                      user={"id": "bob", "watchlist": ["ann"]})
    ann.subscribe("presence-lobby")
    bob.subscribe("presence-lobby")
    assert bob.members("presence-lobby")["members"] == {"ann": {"n": "Ann"}, "bob": {"n": "Bob"}}
    assert ann.wait_for(type="event", event="pusher:member_added")["data"] == {"id": "bob", "info": {"n": "Bob"}}
    bob.signin()
    bob.wait_for(type="message", event="pusher:signin_success")
    server.pusher().send_to_user("bob", "hello", {"to": "bob"})
    assert bob.wait_for(type="user_event", event="hello")["data"] == {"to": "bob"}
    assert [u["id"] for u in server.pusher().users_info("presence-lobby")["users"]] == ["ann", "bob"]
    bob.disconnect()  # pusher-js just drops its requests: the session expires (http_session_timeout, here 1 s)
    removed = ann.wait_for(type="event", event="pusher:member_removed", timeout=5)
    assert removed["data"] == {"id": "bob", "info": {"n": "Bob"}}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reconnect_after_a_server_restart(server_factory: Any, js: JsHarness, transport: str) -> None:
    app = {"id": "900901", "key": "restart-http", "secret": "restart-secret"}
    old = server_factory([app])
    client = http_client(js, old, transport, presence={"user_id": "r", "user_info": {}})
    first = client.socket_id
    for channel in ("news", "private-news", "presence-news"):
        client.subscribe(channel)
    assert old.stop() == 0  # SIGTERM: every session is told 4200, as WebSockets are
    closed = client.wait_for(type="closed", timeout=10)
    assert closed["code"] == 4200, closed
    start = client.mark()
    new = server_factory([app], "--port", str(old.port))
    client.server = new
    client.signer = new.pusher()
    reconnected = client.wait_for(type="connected", start=start, timeout=40)
    assert reconnected["socket_id"] != first
    assert client.state()["transport"] == transport
    for channel in ("news", "private-news", "presence-news"):
        client.wait_for(type="event", channel=channel, event="pusher:subscription_succeeded", start=start,
                        timeout=10)
        new.pusher().trigger(channel, "after-restart", {"channel": channel})
        got = client.wait_for(type="event", channel=channel, event="after-restart", timeout=10)
        assert got["data"] == {"channel": channel}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_falls_back_by_itself_when_websockets_fail(server: Any, js: JsHarness) -> None:
    # pusher-js' default strategy: ws (here refused), wss after 2 s, the HTTP transports after 5 s
    client = js.client(server, connect=False)
    dead = closed_port()
    client.connect(wait=False, wsPort=dead, wssPort=dead, httpHost=server.host, httpPort=server.port,
                   enabledTransports=["ws", "wss", "xhr_streaming", "xhr_polling"])
    client.wait_for(type="connected", timeout=20)
    assert client.state()["transport"] in ("xhr_streaming", "xhr_polling")
    client.subscribe("news")
    server.pusher().trigger("news", "story", {"ok": True})
    assert client.wait_for(type="event", channel="news", event="story")["data"] == {"ok": True}


def test_stream_past_256_kib_reconnects_the_stream_not_the_connection(server_factory: Any, js: JsHarness) -> None:
    # pusher-js restarts a stream whose buffer passed 256 KiB; the session (socket id, channels) carries on
    server = server_factory(None, env={"VASK_LOG_LEVEL": "debug"})
    client = http_client(js, server, "xhr_streaming")
    socket_id = client.socket_id
    client.subscribe("bulk")
    wait_subscription_count(server, "bulk", 1)
    api = server.pusher()
    blob = "x" * 9000
    for n in range(40):  # ~360 KiB
        api.trigger("bulk", "chunk", {"n": n, "blob": blob})
    client.wait_count(40, type="event", channel="bulk", event="chunk", timeout=15)
    assert [d["n"] for d in client.received("bulk", "chunk")] == list(range(40))
    assert client.state()["socket_id"] == socket_id
    assert not client.find(type="closed")
    wait_until(lambda: any("stream resumed for session" in line and socket_id in line for line in server.output),
               what="a second stream request for the same session")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_app_key_is_refused_with_4001(server: Any, js: JsHarness, transport: str) -> None:
    client = js.client(server, connect=False)
    client.call("connect", key="no-such-key", host=server.host, port=server.port,
                options=http_options(server, transport))
    client.wait_for(lambda e: error_code(e) == 4001, type="error")
    # as over a WebSocket: 4001 is in 4000-4099, pusher-js gives up instead of reconnecting
    client.wait_for(type="state", current="disconnected")
    assert client.find(type="connected") == []


def test_http_sessions_across_a_cluster(cluster_factory: Any, js: JsHarness) -> None:
    # an HTTP session on node b is an ordinary member of the cluster: presence and delivery across nodes
    from cluster_helpers import REDIS_URL, broker_problem

    problem = broker_problem("redis")
    if problem:
        pytest.skip(problem)
    a, b = cluster_factory(REDIS_URL).start(2)
    ann = js.client(a, name="ann@a", presence={"user_id": "ann", "user_info": {}})
    bob = http_client(js, b, "xhr_streaming", name="bob@b", presence={"user_id": "bob", "user_info": {}})
    ann.subscribe("presence-x")
    bob.subscribe("presence-x")
    wait_until(lambda: ann.members("presence-x")["count"] == 2, what="ann sees bob across nodes")
    a.pusher().trigger("presence-x", "hello", {"via": "a"})
    assert bob.wait_for(type="event", channel="presence-x", event="hello")["data"] == {"via": "a"}
    assert sorted(u["id"] for u in a.pusher().users_info("presence-x")["users"]) == ["ann", "bob"]


def test_encrypted_and_cache_channels_and_the_watchlist(server: Any, js: JsHarness) -> None:
    key = master_key_b64()
    api = server.pusher(encryption_master_key_base64=key)
    ann = http_client(js, server, "xhr_streaming", name="ann", auth_signer=api,
                      user={"id": "ann", "watchlist": ["bob"]})
    ann.subscribe("private-encrypted-x")
    payload = {"secret": "only for you"}
    api.trigger("private-encrypted-x", "sealed", payload)
    assert ann.wait_for(type="event", channel="private-encrypted-x", event="sealed")["data"] == payload
    assert "only for you" not in json.dumps(ann.find(type="raw"))  # ciphertext relayed as is
    # cache channels: the last event replayed to a new subscriber, a miss reported when there is none
    ann.subscribe("cache-empty")
    ann.wait_for(type="event", channel="cache-empty", event="pusher:cache_miss")
    api.trigger("cache-scores", "score", {"home": 2})
    ann.subscribe("cache-scores")
    assert ann.wait_for(type="event", channel="cache-scores", event="score")["data"] == {"home": 2}
    # watchlist: bob (over polling) signs in and ann is told he is online
    ann.signin()
    ann.wait_for(type="message", event="pusher:signin_success")
    bob = http_client(js, server, "xhr_polling", name="bob", user={"id": "bob"})
    bob.signin()
    online = ann.wait_for(type="watchlist", event="online")
    assert online["data"]["user_ids"] == ["bob"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_quota_counts_http_sessions(server_factory: Any, js: JsHarness, transport: str) -> None:
    server = server_factory([{"id": "700701", "key": "quota-http", "secret": "quota-secret", "max_connections": 1}])
    http_client(js, server, transport, name="first")
    second = js.client(server, name="second", connect=False)
    second.connect(wait=False, **http_options(server, transport))
    second.wait_for(lambda e: error_code(e) == 4004, type="error")
    second.wait_for(type="state", current="disconnected")
    assert second.find(type="connected") == []
