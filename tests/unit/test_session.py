"""session.handle and Hub without an event loop: ping, bad input, subscriptions, cache channels, publishing."""

from __future__ import annotations

import json

import pytest
from helpers import KEY, SOCKET, World, channel_auth, error_frame, internal, succeeded

from vask.protocol import constants as c
from vask.protocol.frames import encode, ws_frame

# --- ping, bad input ---------------------------------------------------------------------------------------------


def test_ping_gets_pong() -> None:
    world = World()
    client = world.connect()
    client.send("pusher:ping", {})
    assert client.raw_frames() == [b'{"event":"pusher:pong","data":"{}"}']
    client.send("pusher:pong", {})
    assert client.raw_frames() == []
    assert client.peer.closed is None


@pytest.mark.parametrize("event", ["pusher:foo", "hello", "pusher_internal:subscription_succeeded",
                                   "pusher:connection_established", "Client-x"])
def test_unknown_event_is_an_error_and_keeps_the_connection(event: str) -> None:
    world = World()
    client = world.connect()
    client.send(event, {}, "x")
    [frame] = client.frames()
    assert frame["event"] == "pusher:error"
    assert frame["data"]["code"] is None
    assert frame["data"]["message"].startswith(f"Unsupported event {event!r}")
    assert client.peer.closed is None
    client.send("pusher:ping", {})
    assert client.events() == ["pusher:pong"]


@pytest.mark.parametrize("payload", [b"nope", b"[]", b"{}", b'{"event":"client-x","channel":5}'])
def test_bad_frames_get_an_error_and_keep_the_connection(payload: bytes) -> None:
    world = World()
    client = world.connect()
    client.send_raw(payload)
    [frame] = client.frames()
    assert frame["event"] == "pusher:error"
    assert frame["data"]["code"] is None
    assert frame["data"]["message"].startswith(("Invalid JSON", "Invalid message"))
    assert client.peer.closed is None
    assert client.conn in world.hub.state(world.app).connections


# --- subscribe --------------------------------------------------------------------------------------------------

def test_subscribe_public() -> None:
    world = World()
    client = world.connect()
    client.subscribe("chatrooms.5432132")
    assert client.raw_frames() == [
        b'{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"chatrooms.5432132"}']
    assert "chatrooms.5432132" in client.conn.subscriptions
    assert world.hub.channel_state(world.app.id, "chatrooms.5432132").subscription_count == 1


def test_subscribe_with_data_as_a_json_string() -> None:
    world = World()
    client = world.connect()
    client.send("pusher:subscribe", json.dumps({"channel": "a"}))
    assert client.frames() == [succeeded("a")]


def test_duplicate_subscribe() -> None:
    world = World()
    client = world.connect()
    client.subscribe("presence-channel", channel_data='{"user_id":"1"}', sign=True)
    client.frames()
    client.subscribe("presence-channel", channel_data='{"user_id":"1"}', sign=True)
    assert client.raw_frames() == [
        b'{"event":"pusher:error","data":{"code":null,"message":"Existing subscription to channel presence-channel"}}']
    assert world.hub.channel_state(world.app.id, "presence-channel").subscription_count == 1


@pytest.mark.parametrize("data", [None, {}, {"channel": 5}, "not json", [], {"auth": ""}])
def test_subscribe_without_channel(data: object) -> None:
    world = World()
    client = world.connect()
    client.send("pusher:subscribe", data)
    assert client.frames() == [error_frame(None, "pusher:subscribe needs data.channel, the channel name")]
    assert client.conn.subscriptions == {}


def test_subscribe_invalid_name_errors_on_the_channel() -> None:
    world = World()
    client = world.connect()
    client.subscribe("bad#name")
    error, sub_error = client.frames()
    assert error["event"] == "pusher:error"
    assert error["data"]["message"].startswith("Invalid channel name 'bad#name'")
    assert sub_error["event"] == "pusher:subscription_error"
    assert sub_error["channel"] == "bad#name"
    assert client.conn.subscriptions == {}
    client.subscribe("x" * 201)
    assert client.frames()[0]["data"]["message"] == "Channel name too long: 201 characters, the limit is 200"


def test_channel_name_limit_is_the_apps() -> None:
    world = World(max_channel_name_length=10)
    client = world.connect()
    client.subscribe("x" * 10)
    client.subscribe("x" * 11)
    frames = client.frames()
    assert frames[0] == succeeded("x" * 10)
    assert frames[1] == error_frame(None, "Channel name too long: 11 characters, the limit is 10")


@pytest.mark.parametrize("channel", ["private-foo", "presence-foo", "private-encrypted-foo", "private-cache-foo"])
@pytest.mark.parametrize("auth", [None, ""])
def test_private_without_auth(channel: str, auth: str | None) -> None:
    world = World()
    client = world.connect()
    client.send("pusher:subscribe", {"channel": channel} if auth is None else {"channel": channel, "auth": auth})
    message = f"Auth info required to subscribe to {channel}"
    assert client.frames() == [
        error_frame(None, message),
        {"event": "pusher:subscription_error", "channel": channel,
         "data": {"type": "AuthError", "error": message, "status": 401}},
    ]
    assert client.conn.subscriptions == {}
    assert world.hub.channel_state(world.app.id, channel).occupied is False


@pytest.mark.parametrize("auth", [
    f"{KEY}:{'0' * 64}",
    f"otherkey:{'58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4'}",
    channel_auth("9999.9999", "private-foobar"),  # signed for another socket
    channel_auth(SOCKET, "private-other"),
])
def test_private_with_bad_auth(auth: str) -> None:
    world = World()
    client = world.connect(SOCKET)
    client.subscribe("private-foobar", auth=auth)
    message = f"Invalid signature: Expected HMAC SHA256 hex digest of 1234.1234:private-foobar, but got {auth}"
    assert client.frames() == [
        error_frame(None, message),
        {"event": "pusher:subscription_error", "channel": "private-foobar",
         "data": {"type": "AuthError", "error": message, "status": 401}},
    ]
    assert client.conn.subscriptions == {}
    assert client.peer.closed is None


def test_private_with_the_docs_vector() -> None:
    world = World()
    client = world.connect(SOCKET)
    client.subscribe("private-foobar",
                     auth=f"{KEY}:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4")
    assert client.frames() == [succeeded("private-foobar")]
    assert client.conn.authorized


def test_private_with_custom_channel_data_is_verified_with_it() -> None:
    world = World()
    custom = '{"user_id": 10, "user_info": {"name": "Mr. Channels"}}'  # pusher-http-python custom data
    client = world.connect(SOCKET)
    client.subscribe("private-foobar", channel_data=custom, sign=True)
    assert client.frames() == [succeeded("private-foobar")]
    # the plain private signature does not match when channel_data is sent along
    other = world.connect(SOCKET)
    other.subscribe("private-foobar", auth=channel_auth(SOCKET, "private-foobar"), channel_data=custom)
    assert other.frames()[0]["data"]["message"].startswith("Invalid signature: Expected HMAC SHA256 hex digest of "
                                                           f"1234.1234:private-foobar:{custom}, but got")


def test_channel_data_must_be_a_string() -> None:
    world = World()
    client = world.connect()
    client.send("pusher:subscribe", {"channel": "private-a", "auth": "x", "channel_data": {"user_id": "1"}})
    assert client.frames()[0] == error_frame(None, "channel_data must be the JSON string that was signed, "
                                                   "for private-a")
    assert client.conn.subscriptions == {}


def test_encrypted_channel_subscribes_with_a_private_signature() -> None:
    world = World()
    client = world.connect()
    client.subscribe("private-encrypted-x", sign=True)
    assert client.frames() == [succeeded("private-encrypted-x")]


# --- unsubscribe, occupancy ----------------------------------------------------------------------------------

def test_unsubscribe_sends_nothing_and_releases_the_channel() -> None:
    world = World()
    client = world.connect()
    client.subscribe("a")
    client.frames()
    client.unsubscribe("a")
    assert client.frames() == []
    assert client.conn.subscriptions == {}
    assert world.hub.channel_state(world.app.id, "a").occupied is False
    client.unsubscribe("a")  # not subscribed: ignored
    assert client.frames() == []
    client.send("pusher:unsubscribe", {})
    assert client.frames() == [error_frame(None, "pusher:unsubscribe needs data.channel, the channel name")]


def test_observer_sees_occupied_and_vacated_once_per_transition() -> None:
    world = World()
    a, b = world.clients(2)
    a.subscribe("room")
    b.subscribe("room")
    a.unsubscribe("room")
    assert world.observer.named("channel_occupied", "channel_vacated") == [("channel_occupied", "3", "room")]
    b.disconnect()
    b.disconnect()  # idempotent
    a.subscribe("room")
    a.subscribe("room")  # duplicate: no transition
    world.hub.close(a.conn, 4200, "bye")
    assert world.observer.named("channel_occupied", "channel_vacated") == [
        ("channel_occupied", "3", "room"), ("channel_vacated", "3", "room"),
        ("channel_occupied", "3", "room"), ("channel_vacated", "3", "room")]
    assert world.hub.apps == {}


def test_over_bound() -> None:
    world = World()
    client = world.connect(max_outbox=100)
    assert not client.conn.over_bound()
    client.peer.pending = 100
    assert not client.conn.over_bound()
    client.peer.pending = 101
    assert client.conn.over_bound()
    client.peer.pending = 50
    client.conn.push(b"x" * 50)
    assert not client.conn.over_bound()
    client.conn.push(b"y")
    assert client.conn.over_bound()
    client.conn.take_outbox()
    assert not client.conn.over_bound()


def test_push_after_close_is_dropped() -> None:
    world = World()
    client = world.connect()
    world.hub.close(client.conn, 4200, "restart")
    assert client.peer.closed == (4200, "restart")
    client.conn.send(b"{}")
    assert client.conn.outbox == []
    assert client.frames() == [error_frame(4200, "restart")]


# --- cache channels ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", ["cache-a", "private-cache-a", "private-encrypted-cache-a"])
def test_cache_miss_then_cached_event(channel: str) -> None:
    world = World()
    first = world.connect()
    first.subscribe(channel, sign=True)
    assert first.frames() == [succeeded(channel), internal("pusher:cache_miss", {}, channel)]
    assert first.raw_frames() == []
    assert world.observer.named("cache_miss") == [("cache_miss", "3", channel)]
    world.hub.publish(world.app, channel, "ev", '{"n":1}')
    world.hub.publish(world.app, channel, "ev2", "latest")
    assert first.frames() == [{"event": "ev", "data": '{"n":1}', "channel": channel},
                              {"event": "ev2", "data": "latest", "channel": channel}]
    second = world.connect()
    second.subscribe(channel, sign=True)
    assert second.raw_frames() == [
        f'{{"event":"pusher_internal:subscription_succeeded","data":"{{}}","channel":"{channel}"}}'.encode(),
        f'{{"event":"ev2","data":"latest","channel":"{channel}"}}'.encode()]
    assert len(world.observer.named("cache_miss")) == 1


def test_cache_survives_an_empty_channel_and_expires_after_the_ttl() -> None:
    world = World()
    world.hub.publish(world.app, "cache-a", "ev", "x")  # no subscribers: still cached
    assert world.hub.channel_state(world.app.id, "cache-a").cache is not None
    world.clock.advance(c.CACHE_TTL - 1)
    early = world.connect()
    early.subscribe("cache-a")
    assert early.frames()[1] == {"event": "ev", "data": "x", "channel": "cache-a"}
    world.clock.advance(1)
    late = world.connect()
    late.subscribe("cache-a")
    assert late.frames() == [succeeded("cache-a"), internal("pusher:cache_miss", {}, "cache-a")]
    assert world.observer.named("cache_miss") == [("cache_miss", "3", "cache-a")]


def test_non_cache_channels_do_not_cache() -> None:
    world = World()
    world.hub.publish(world.app, "a", "ev", "x")
    client = world.connect()
    client.subscribe("a")
    assert client.frames() == [succeeded("a")]
    assert world.observer.named("cache_miss") == []


# --- publish -----------------------------------------------------------------------------------------------

def test_publish_frames_once_and_queues_the_same_bytes() -> None:
    world = World()
    clients = world.clients(3)
    for client in clients:
        client.subscribe("news")
        client.frames()
    world.hub.publish(world.app, "news", "App\\Events\\X", '{"a":1}')
    queued = [client.conn.outbox for client in clients]
    assert all(len(q) == 1 for q in queued)
    assert queued[0][0] is queued[1][0] is queued[2][0]
    assert queued[0][0] == ws_frame(encode("App\\Events\\X", '{"a":1}', "news"))
    for client in clients:
        assert client.raw_frames() == [b'{"event":"App\\\\Events\\\\X","data":"{\\"a\\":1}","channel":"news"}']
    assert world.observer.named("broadcast") == [("broadcast", "3", "news", 3)]


def test_publish_excludes_a_socket() -> None:
    world = World()
    a, b = world.clients(2)
    for client in (a, b):
        client.subscribe("news")
        client.frames()
    world.hub.publish(world.app, "news", "ev", "d", exclude_socket_id=a.socket_id)
    assert a.frames() == []
    assert b.frames() == [{"event": "ev", "data": "d", "channel": "news"}]
    world.hub.publish(world.app, "news", "ev", "d", exclude_socket_id="0.0")
    assert len(a.frames()) == len(b.frames()) == 1
    assert world.observer.named("broadcast") == [("broadcast", "3", "news", 1), ("broadcast", "3", "news", 2)]


def test_publish_to_other_channels_and_apps_is_not_delivered() -> None:
    world = World()
    a = world.connect()
    a.subscribe("news")
    a.frames()
    world.hub.publish(world.app, "sport", "ev", "d")
    other = world.app.model_copy(update={"id": "4"})
    world.hub.publish(other, "news", "ev", "d")
    assert a.frames() == []
