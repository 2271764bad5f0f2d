"""Client events (pusher-protocol.md §1.4): app switch, channel rules, relaying, user_id, rate limit."""

from __future__ import annotations

import json

import pytest
from helpers import Client, World, error_frame

from vask.core.observer import Observer
from vask.protocol import constants as c


def pair(world: World, channel: str = "private-chat") -> tuple[Client, Client]:
    a, b = world.clients(2)
    for client in (a, b):
        client.subscribe(channel, sign=True)
        client.frames()
    return a, b


def test_disabled_app_refuses_with_4301() -> None:
    world = World(client_events=False)
    a, b = pair(world)
    a.send("client-x", {"m": 1}, "private-chat")
    assert a.frames() == [error_frame(4301, "Client events are not enabled for this app")]
    assert b.frames() == []
    assert a.peer.closed is None


def test_relayed_to_others_not_echoed() -> None:
    world = World(client_events=True)
    a, b = pair(world)
    c3 = world.connect()
    c3.subscribe("private-chat", sign=True)
    c3.frames()
    a.send("client-greeting", {"message": "hello"}, "private-chat")
    assert a.frames() == []
    expected = b'{"event":"client-greeting","data":{"message":"hello"},"channel":"private-chat"}'
    assert b.raw_frames() == [expected]
    assert c3.raw_frames() == [expected]
    assert world.observer.named("client_event", "broadcast") == [
        ("client_event", "3", "private-chat", "client-greeting", {"message": "hello"}, a.socket_id, None),
        ("broadcast", "3", "private-chat", 2)]


@pytest.mark.parametrize("data", ['{"message":"hello"}', "plain", "", {"a": [1, {"b": None}]}, [1, 2], 5, None])
def test_data_forwarded_unchanged(data: object) -> None:
    world = World(client_events=True)
    a, b = pair(world)
    a.send("client-x", data, "private-chat")
    [frame] = b.frames()
    assert frame == {"event": "client-x", "data": data, "channel": "private-chat"}
    assert type(frame["data"]) is type(data)


def test_string_data_is_not_re_encoded() -> None:
    world = World(client_events=True)
    a, b = pair(world)
    a.send_raw(b'{"event":"client-x","data":"{\\"a\\": 1}","channel":"private-chat"}')
    assert b.raw_frames() == [b'{"event":"client-x","data":"{\\"a\\": 1}","channel":"private-chat"}']


def test_presence_adds_the_senders_user_id() -> None:
    world = World(client_events=True)
    a, b = world.clients(2)
    a.join("presence-room", 141)
    b.join("presence-room", "b")
    a.frames()
    b.frames()
    a.send("client-event", {"data": "hello client"}, "presence-room")
    assert b.raw_frames() == [
        b'{"event":"client-event","data":{"data":"hello client"},"channel":"presence-room","user_id":"141"}']
    assert a.frames() == []
    assert world.observer.named("client_event")[0][-1] == "141"


def test_presence_user_id_is_the_subscription_member_not_the_signed_in_user() -> None:
    world = World(client_events=True)
    a, b = world.clients(2)
    a.signin({"id": "signed"})
    a.join("presence-room", "member")
    b.join("presence-room", "b")
    b.frames()
    a.send("client-x", {}, "presence-room")
    assert b.frames()[0]["user_id"] == "member"


@pytest.mark.parametrize("channel", ["public-room", "cache-room", "private-encrypted-room",
                                     "private-encrypted-cache-room"])
def test_refused_on_channels_other_than_private_and_presence(channel: str) -> None:
    world = World(client_events=True)
    a, b = pair(world, channel)
    a.send("client-x", {}, channel)
    assert a.frames() == [error_frame(None, "Client events are only allowed on private and presence channels, "
                                            f"not {channel}")]
    assert b.frames() == []


def test_private_cache_allows_client_events() -> None:
    world = World(client_events=True)
    a, b = pair(world, "private-cache-room")
    a.send("client-x", "d", "private-cache-room")
    assert b.frames() == [{"event": "client-x", "data": "d", "channel": "private-cache-room"}]


def test_refused_when_not_subscribed() -> None:
    world = World(client_events=True)
    a, b = pair(world)
    outsider = world.connect()
    outsider.send("client-x", {}, "private-chat")
    assert outsider.frames() == [error_frame(None, "Client event client-x rejected: subscribe to private-chat first")]
    outsider.send("client-x", {})
    assert outsider.frames() == [error_frame(None, "Client event client-x rejected: subscribe to None first")]
    a.unsubscribe("private-chat")
    a.send("client-x", {}, "private-chat")
    assert a.frames()[0]["data"]["message"] == "Client event client-x rejected: subscribe to private-chat first"
    assert b.frames() == []
    assert world.observer.named("client_event") == []


def test_event_name_and_data_limits() -> None:
    world = World(client_events=True, max_event_name_length=12, max_event_data_bytes=10)
    a, b = pair(world)
    a.send("client-abcde", "x" * 10, "private-chat")
    assert len(b.frames()) == 1
    a.send("client-abcdef", "x", "private-chat")
    assert a.frames() == [error_frame(None, "Event name too long: at most 12 characters")]
    a.send("client-x", "x" * 11, "private-chat")
    assert a.frames() == [error_frame(None, "Client event data too large: 11 bytes, the limit is 10")]
    a.send("client-x", {"k": "123"}, "private-chat")  # {"k":"123"} is 11 bytes
    assert a.frames() == [error_frame(None, "Client event data too large: 11 bytes, the limit is 10")]
    assert b.frames() == []


def test_data_limit_counts_utf8_bytes_of_string_data() -> None:
    world = World(client_events=True, max_event_data_bytes=10)
    a, b = pair(world)
    a.send("client-x", "é" * 6, "private-chat")  # 6 characters, 12 bytes
    assert a.frames() == [error_frame(None, "Client event data too large: 12 bytes, the limit is 10")]
    assert b.frames() == []
    a.send("client-x", "é" * 5, "private-chat")
    assert b.frames() == [{"event": "client-x", "data": "é" * 5, "channel": "private-chat"}]


def test_rate_limit_ten_per_second_then_4301_and_refill() -> None:
    world = World(client_events=True)
    a, b = pair(world)
    for i in range(10):
        a.send("client-x", i, "private-chat")
    assert [f["data"] for f in b.frames()] == list(range(10))
    a.send("client-x", 10, "private-chat")
    assert a.frames() == [error_frame(c.CLIENT_EVENT_RATE_LIMIT,
                                      "Client event rejected: more than 10 per second")]
    assert b.frames() == []
    assert a.peer.closed is None
    world.clock.advance(0.1)  # one token back
    a.send("client-x", 11, "private-chat")
    a.send("client-x", 12, "private-chat")
    assert [f["data"] for f in b.frames()] == [11]
    assert a.frames()[0]["data"]["code"] == 4301
    world.clock.advance(60)  # refills up to the burst, not beyond
    for i in range(11):
        a.send("client-x", i, "private-chat")
    assert len(b.frames()) == 10
    assert len(a.frames()) == 1
    # the bucket is per connection
    b.send("client-y", 0, "private-chat")
    assert a.frames() == [{"event": "client-y", "data": 0, "channel": "private-chat"}]


def test_rejected_events_do_not_spend_tokens() -> None:
    world = World(client_events=True)
    a, b = pair(world)
    for _ in range(20):
        a.send("client-x", {}, "private-other")  # not subscribed
    a.frames()
    for i in range(10):
        a.send("client-x", i, "private-chat")
    assert len(b.frames()) == 10


def test_rate_limit_is_the_apps() -> None:
    world = World(client_events=True, max_client_events_per_second=2)
    a, b = pair(world)
    for i in range(3):
        a.send("client-x", i, "private-chat")
    assert len(b.frames()) == 2
    assert a.frames() == [error_frame(4301, "Client event rejected: more than 2 per second")]


def test_observer_quota_refuses() -> None:
    class Quota(Observer):
        def refuse_broadcasts(self, app: object, count: int) -> str | None:
            assert count == 1
            return "Message quota exceeded"

    world = World(client_events=True)
    world.hub.observer = Quota()
    a, b = pair(world)
    a.send("client-x", {}, "private-chat")
    assert a.frames() == [error_frame(4301, "Client event rejected: Message quota exceeded")]
    assert b.frames() == []


def test_client_prefix_is_anchored() -> None:
    world = World(client_events=True)
    a, b = pair(world)
    a.send("my-client-x", {}, "private-chat")
    assert a.frames()[0]["data"]["message"].startswith("Unsupported event 'my-client-x'")
    assert b.frames() == []


def test_client_event_frame_keeps_json_roundtrip() -> None:
    world = World(client_events=True)
    a, b = pair(world)
    a.send("client-x", {"unicode": "é✓", "n": 1.5}, "private-chat")
    [raw] = b.raw_frames()
    assert json.loads(raw)["data"] == {"unicode": "é✓", "n": 1.5}
