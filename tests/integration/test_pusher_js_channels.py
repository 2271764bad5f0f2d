"""pusher-js 8 (Node) against the real server: cache channels, subscription counts and graceful shutdown."""

from __future__ import annotations

from typing import Any

import pytest
from js_helpers import JsClient, JsHarness, error_code, js_fixture, master_key_b64, node_env_fixture  # noqa: F401

pytestmark = pytest.mark.node

COUNTS_OFF = {"id": "600600", "key": "nocount-key", "secret": "nocount-secret", "subscription_count_events": False}


def after_subscribe(client: JsClient, channel: str) -> list[str]:
    """Names of the app-visible events on ``channel`` from subscription_succeeded on (counts left out)."""
    names = [e["event"] for e in client.find(type="event", channel=channel)
             if e["event"] != "pusher:subscription_count"]
    return names[names.index("pusher:subscription_succeeded"):]


def marker(server: Any, channel: str, *clients: JsClient) -> None:
    server.pusher().trigger(channel, "marker", {})
    for client in clients:
        client.wait_for(type="event", channel=channel, event="marker")


# -- cache channels ------------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", ["cache-x", "private-cache-x", "presence-cache-x"])
def test_cache_channel_miss_then_last_event(server: Any, js: JsHarness, channel: str) -> None:
    first = js.client(server, name="first", presence={"user_id": "a", "user_info": {}})
    first.subscribe(channel)
    miss = first.wait_for(type="event", channel=channel, event="pusher:cache_miss")
    assert miss["data"] in ({}, None)
    first.wait_for(type="message", channel=channel, event="pusher:cache_miss")

    api = server.pusher()
    api.trigger(channel, "price", {"v": 1})
    api.trigger(channel, "price", {"v": 2})
    assert first.wait_count(2, type="event", channel=channel, event="price")[-1]["data"] == {"v": 2}

    second = js.client(server, name="second", presence={"user_id": "b", "user_info": {}})
    second.subscribe(channel)
    cached = second.wait_for(type="event", channel=channel, event="price")
    assert cached["data"] == {"v": 2}, "the new subscriber gets the last event published"
    marker(server, channel, second)
    names = after_subscribe(second, channel)
    assert names[:2] == ["pusher:subscription_succeeded", "price"], names
    assert "pusher:cache_miss" not in names
    assert len(second.received(channel, "price")) == 1
    # the first subscriber does not get the cached event again
    marker(server, channel, first)
    assert len(first.received(channel, "price")) == 2


def test_encrypted_cache_channel_delivers_the_cached_ciphertext(server: Any, js: JsHarness) -> None:
    channel = "private-encrypted-cache-x"
    api = server.pusher(encryption_master_key_base64=master_key_b64())
    first = js.client(server, name="first", auth_signer=api)
    first.subscribe(channel)
    first.wait_for(type="event", channel=channel, event="pusher:cache_miss")
    api.trigger(channel, "sealed", {"secret": "s3"})
    first.wait_for(type="event", channel=channel, event="sealed")

    second = js.client(server, name="second", auth_signer=api)
    second.subscribe(channel)
    assert second.wait_for(type="event", channel=channel, event="sealed")["data"] == {"secret": "s3"}
    assert second.find(type="event", channel=channel, event="pusher:cache_miss") == []


def test_cache_is_per_channel(server: Any, js: JsHarness) -> None:
    server.pusher().trigger("cache-a", "ev", {"for": "a"})
    client = js.client(server)
    client.subscribe("cache-a")
    client.subscribe("cache-b")
    assert client.wait_for(type="event", channel="cache-a", event="ev")["data"] == {"for": "a"}
    client.wait_for(type="event", channel="cache-b", event="pusher:cache_miss")
    assert client.find(type="event", channel="cache-b", event="ev") == []


# -- subscription_count --------------------------------------------------------------------------------

def counts(client: JsClient, channel: str, start: int = 0) -> list[int]:
    return [d["subscription_count"] for d in client.received(channel, "pusher:subscription_count", start)]


def test_subscription_count_events(server: Any, js: JsHarness) -> None:
    channel = "counted"
    first, second = js.client(server, name="first"), js.client(server, name="second")
    first.subscribe(channel)
    first.wait_for(type="event", channel=channel, event="pusher:subscription_count")
    assert counts(first, channel) == [1]

    start = first.mark()
    second.subscribe(channel)
    first.wait_for(type="event", channel=channel, event="pusher:subscription_count", start=start)
    assert counts(first, channel, start) == [2]
    second.wait_for(type="event", channel=channel, event="pusher:subscription_count")
    assert counts(second, channel)[-1] == 2
    assert first.call("channel_state", channel=channel)["subscription_count"] == 2

    start = first.mark()
    second.unsubscribe(channel)
    first.wait_for(type="event", channel=channel, event="pusher:subscription_count", start=start)
    assert counts(first, channel, start) == [1]
    # disconnecting counts too
    third = js.client(server, name="third")
    third.subscribe(channel)
    first.wait_for(lambda e: e["data"] == {"subscription_count": 2}, type="event", channel=channel,
                   event="pusher:subscription_count", start=start)
    start = first.mark()
    third.disconnect()
    first.wait_for(type="event", channel=channel, event="pusher:subscription_count", start=start)
    assert counts(first, channel, start) == [1]


def test_subscription_count_is_not_sent_on_presence_channels(server: Any, js: JsHarness) -> None:
    channel = "presence-nocount"
    first = js.client(server, presence={"user_id": "1", "user_info": {}})
    second = js.client(server, presence={"user_id": "2", "user_info": {}})
    first.subscribe(channel)
    second.subscribe(channel)
    marker(server, channel, first, second)
    assert first.frames(event="pusher_internal:subscription_count") == []


def test_subscription_count_only_when_the_app_enables_it(server_factory: Any, js: JsHarness) -> None:
    server = server_factory([COUNTS_OFF])
    first, second = js.client(server, name="first"), js.client(server, name="second")
    first.subscribe("quiet")
    second.subscribe("quiet")
    second.sync()
    marker(server, "quiet", first, second)
    assert first.frames(event="pusher_internal:subscription_count") == []


# -- graceful shutdown ---------------------------------------------------------------------------------

def test_graceful_shutdown_closes_with_4200(server: Any, js: JsHarness) -> None:
    clients = [js.client(server, name=f"c{i}") for i in range(2)]
    for client in clients:
        client.subscribe("lobby")
    assert server.stop() == 0, "".join(server.output)
    for client in clients:
        closed = client.wait_for(type="closed", timeout=10)
        assert closed["code"] == 4200, closed
        # what app code sees: connection.bind('error', ...) with the close code
        client.wait_for(lambda e: error_code(e) == 4200, type="error")
        # 4200-4299: pusher-js reconnects at once (and finds the server gone)
        client.wait_for(type="state", previous="connected", current="connecting")


def test_clients_come_back_after_a_restart(server_factory: Any, js: JsHarness) -> None:
    # a deploy: SIGTERM (4200, "reconnect immediately"), a new process on the same port; pusher-js
    # reconnects by itself, gets a new socket id and subscribes its channels again
    app = {"id": "900900", "key": "restart-key", "secret": "restart-secret"}
    old = server_factory([app])
    client = js.client(old, presence={"user_id": "r", "user_info": {}})
    first_socket = client.socket_id
    client.subscribe("news")
    client.subscribe("private-news")
    client.subscribe("presence-news")
    assert old.stop() == 0
    client.wait_for(type="closed", timeout=10)

    start = client.mark()
    new = server_factory([app], "--port", str(old.port))
    client.server = new
    client.signer = new.pusher()
    # pusher-js retries on its own schedule: a refused attempt right after the close, the next ~15 s later
    reconnected = client.wait_for(type="connected", start=start, timeout=30)
    assert reconnected["socket_id"] != first_socket
    for channel in ("news", "private-news", "presence-news"):
        client.wait_for(type="event", channel=channel, event="pusher:subscription_succeeded", start=start)
        new.pusher().trigger(channel, "after-restart", {"channel": channel})
        assert client.wait_for(type="event", channel=channel, event="after-restart")["data"] == {"channel": channel}
    assert client.members("presence-news")["count"] == 1
