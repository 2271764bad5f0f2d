"""Presence channels (pusher-protocol.md §1.7): members, multi-connection users, limits, signed-in members."""

from __future__ import annotations

import json
from typing import Any

from helpers import KEY, SOCKET, Client, World, error_frame, internal, presence_data
from hypothesis import given, settings
from hypothesis import strategies as st

CH = "presence-foobar"


def members(world: World, channel: str = CH) -> dict[str, tuple[Any, int]]:
    found = world.hub.state(world.app).channels.get(channel)
    return {uid: (m.info, m.connections) for uid, m in found.members.items()} if found else {}


def test_subscription_succeeded_with_the_docs_vector_and_integer_user_id() -> None:
    world = World()
    client = world.connect(SOCKET)
    client.subscribe(CH, auth=f"{KEY}:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80",
                     channel_data='{"user_id":10,"user_info":{"name":"Mr. Channels"}}')
    assert client.raw_frames() == [
        b'{"event":"pusher_internal:subscription_succeeded","data":"{\\"presence\\":{\\"count\\":1,\\"ids\\":'
        b'[\\"10\\"],\\"hash\\":{\\"10\\":{\\"name\\":\\"Mr. Channels\\"}}}}","channel":"presence-foobar"}']
    assert client.conn.subscriptions[CH].user_id == "10"
    assert world.hub.presence_user_ids(world.app.id, CH) == ["10"]


def test_pusher_http_python_spaced_channel_data() -> None:
    world = World()
    client = world.connect(SOCKET)
    client.subscribe(CH, auth=f"{KEY}:5b8808f3035fec2e4157c6b430a06d5b0de16d174e1a779e0e2b64d9983bde27",
                     channel_data='{"user_id": 10, "user_info": {"name": "Mr. Channels"}}')
    [frame] = client.frames()
    assert presence_data(frame) == {"count": 1, "ids": ["10"], "hash": {"10": {"name": "Mr. Channels"}}}


def test_member_added_to_others_only_and_once_per_user() -> None:
    world = World()
    a, b1, b2 = world.clients(3)
    a.join(CH, "a", {"n": "A"})
    assert presence_data(a.frames()[0]) == {"count": 1, "ids": ["a"], "hash": {"a": {"n": "A"}}}
    b1.join(CH, "b", {"n": "B"})
    assert presence_data(b1.frames()[0]) == {"count": 2, "ids": ["a", "b"], "hash": {"a": {"n": "A"}, "b": {"n": "B"}}}
    assert a.raw_frames() == [b'{"event":"pusher_internal:member_added","data":"{\\"user_id\\":\\"b\\",\\"user_info'
                              b'\\":{\\"n\\":\\"B\\"}}","channel":"presence-foobar"}']
    b2.join(CH, "b", {"n": "B"})  # the same user's second tab is not a new member
    assert presence_data(b2.frames()[0])["count"] == 2
    assert a.frames() == []
    assert b1.frames() == []
    assert world.observer.named("member_added") == [("member_added", "3", CH, "a"), ("member_added", "3", CH, "b")]
    assert members(world) == {"a": ({"n": "A"}, 1), "b": ({"n": "B"}, 2)}
    assert world.hub.channel_state(world.app.id, CH).user_count == 2
    assert world.hub.channel_state(world.app.id, CH).subscription_count == 3


def test_member_added_without_user_info_has_only_user_id() -> None:
    world = World()
    a, b = world.clients(2)
    a.join(CH, "a")
    b.join(CH, "b")
    assert a.frames()[1] == internal("pusher_internal:member_added", {"user_id": "b"}, CH)
    assert presence_data(b.frames()[0]) == {"count": 2, "ids": ["a", "b"], "hash": {"a": None, "b": None}}


def test_member_removed_only_when_the_last_connection_leaves() -> None:
    world = World()
    a, b1, b2 = world.clients(3)
    a.join(CH, "a")
    b1.join(CH, "b")
    b2.join(CH, "b")
    a.frames()
    b1.unsubscribe(CH)
    assert a.frames() == []
    assert world.observer.named("member_removed") == []
    b2.disconnect()
    assert a.raw_frames() == [
        b'{"event":"pusher_internal:member_removed","data":"{\\"user_id\\":\\"b\\"}","channel":"presence-foobar"}']
    assert world.observer.named("member_removed") == [("member_removed", "3", CH, "b")]
    assert members(world) == {"a": (None, 1)}
    a.unsubscribe(CH)
    assert world.observer.named("member_removed")[-1] == ("member_removed", "3", CH, "a")
    assert members(world) == {}


def test_user_info_is_replaced_by_the_latest_join() -> None:
    world = World()
    first, second, watcher = world.clients(3)
    first.join(CH, "u", {"v": 1})
    second.join(CH, "u", {"v": 2})
    assert presence_data(second.frames()[0])["hash"] == {"u": {"v": 2}}
    watcher.join(CH, "w")
    assert presence_data(watcher.frames()[0])["hash"] == {"u": {"v": 2}, "w": None}
    second.unsubscribe(CH)
    assert members(world)["u"] == ({"v": 2}, 1)


def test_integer_and_string_ids_are_the_same_member() -> None:
    world = World()
    a, b = world.clients(2)
    a.join(CH, 7)
    b.join(CH, "7")
    assert presence_data(b.frames()[0])["ids"] == ["7"]
    assert members(world) == {"7": (None, 2)}


def test_member_limit() -> None:
    world = World()
    clients = [world.connect() for _ in range(101)]
    for i, client in enumerate(clients[:100]):
        client.join(CH, f"u{i}")
    assert len(members(world)) == 100
    last = clients[100]
    last.join(CH, "u100")
    message = f"Presence channel {CH} is full: at most 100 members"
    assert last.frames() == [error_frame(4100, message),
                             {"event": "pusher:subscription_error", "channel": CH,
                              "data": {"type": "AuthError", "error": message, "status": 403}}]
    assert CH not in last.conn.subscriptions
    assert len(members(world)) == 100
    # a second connection of a user who is already a member still gets in
    last.join(CH, "u5")
    assert presence_data(last.frames()[0])["count"] == 100
    assert members(world)["u5"][1] == 2


def test_member_limit_is_the_apps_and_a_refused_channel_is_not_left_behind() -> None:
    world = World(max_presence_members=1)
    a, b = world.clients(2)
    a.join(CH, "a")
    b.join(CH, "b")
    assert b.frames()[0]["data"]["code"] == 4100
    a.unsubscribe(CH)
    assert world.hub.channel_state(world.app.id, CH).occupied is False
    assert CH not in world.hub.state(world.app).channels


def test_user_id_length_limit() -> None:
    world = World()
    ok, too_long = world.clients(2)
    ok.join(CH, "x" * 128)
    assert presence_data(ok.frames()[0])["ids"] == ["x" * 128]
    too_long.join(CH, "x" * 129)
    assert too_long.frames()[0] == error_frame(None, "Presence user_id too long: at most 128 characters")
    assert CH not in too_long.conn.subscriptions


def test_user_info_size_limit() -> None:
    world = World()
    ok, too_big = world.clients(2)
    info_1024 = "x" * 1022  # a JSON string of 1022 characters is 1024 bytes with its quotes
    ok.join(CH, "a", info_1024)
    assert presence_data(ok.frames()[0])["hash"] == {"a": info_1024}
    too_big.join(CH, "b", {"k": "x" * 1020})
    assert too_big.frames()[0] == error_frame(None, "Presence user_info too large: at most 1024 bytes")
    assert list(members(world)) == ["a"]


def test_invalid_channel_data() -> None:
    world = World()
    client = world.connect()
    cases = {
        "not json": f"Invalid channel_data for {CH}: not JSON",
        "[1]": f"Invalid channel_data for {CH}: expected an object with user_id",
        '{"user_info":{}}': f"Invalid channel_data for {CH}: expected an object with user_id",
        '{"user_id":""}': f"Invalid channel_data for {CH}: user_id must be a non-empty string or number",
        '{"user_id":true}': f"Invalid channel_data for {CH}: user_id must be a non-empty string or number",
        '{"user_id":null}': f"Invalid channel_data for {CH}: user_id must be a non-empty string or number",
        '{"user_id":1.5}': f"Invalid channel_data for {CH}: user_id must be a non-empty string or number",
        '{"user_id":["a"]}': f"Invalid channel_data for {CH}: user_id must be a non-empty string or number",
    }
    for channel_data, message in cases.items():
        client.subscribe(CH, channel_data=channel_data, sign=True)
        assert client.frames()[0] == error_frame(None, message), channel_data
    assert client.conn.subscriptions == {}


def test_bad_signature_is_checked_before_channel_data() -> None:
    world = World()
    client = world.connect()
    client.subscribe(CH, auth=f"{KEY}:{'0' * 64}", channel_data="not json")
    assert client.frames()[0]["data"]["message"].startswith("Invalid signature: Expected HMAC SHA256 hex digest of")


def test_presence_without_channel_data_uses_the_signed_in_user() -> None:
    world = World()
    other, client = world.clients(2)
    other.join(CH, "o")
    client.signin({"id": "u1", "user_info": {"name": "Me"}})
    client.frames()
    other.frames()
    client.subscribe(CH, sign=True)  # pusher-js 8 signs socket_id:channel and sends no channel_data
    assert presence_data(client.frames()[0]) == {"count": 2, "ids": ["o", "u1"],
                                                 "hash": {"o": None, "u1": {"name": "Me"}}}
    assert other.frames() == [internal("pusher_internal:member_added", {"user_id": "u1",
                                                                        "user_info": {"name": "Me"}}, CH)]
    assert client.conn.subscriptions[CH].user_id == "u1"


def test_presence_without_channel_data_needs_a_signed_in_connection() -> None:
    world = World()
    client = world.connect()
    client.subscribe(CH, sign=True)
    assert client.frames()[0] == error_frame(
        None, f"channel_data required to subscribe to presence channel {CH} (or sign in first)")
    assert client.conn.subscriptions == {}


def test_presence_cache_channel() -> None:
    world = World()
    world.hub.publish(world.app, "presence-cache-x", "ev", "d")
    client = world.connect()
    client.join("presence-cache-x", "u")
    frames = client.frames()
    assert presence_data(frames[0])["ids"] == ["u"]
    assert frames[1:] == [{"event": "ev", "data": "d", "channel": "presence-cache-x"}]


# --- property: members follow the subscribed connections ----------------------------------------------------

USERS = ["a", "b", "c"]
op = st.one_of(
    st.tuples(st.just("subscribe"), st.integers(0, 4), st.sampled_from(USERS), st.integers(0, 3)),
    st.tuples(st.just("unsubscribe"), st.integers(0, 4)),
    st.tuples(st.just("disconnect"), st.integers(0, 4)),
)


def replay(observer: Client, known: set[str]) -> None:
    """Apply the member_added / member_removed frames the observer got to ``known``, strictly."""
    for frame in observer.frames():
        data = json.loads(frame["data"])
        assert frame["channel"] == CH
        if frame["event"] == "pusher_internal:member_added":
            assert data["user_id"] not in known, f"member_added for a present member {data}"
            known.add(data["user_id"])
        else:
            assert frame["event"] == "pusher_internal:member_removed", frame
            assert data["user_id"] in known, f"member_removed for an absent member {data}"
            known.remove(data["user_id"])


@settings(max_examples=200, deadline=None)
@given(st.lists(op, max_size=40))
def test_members_follow_subscribed_connections(ops: list[tuple[Any, ...]]) -> None:
    world = World()
    observer = world.connect()
    observer.join(CH, "observer")
    observer.frames()
    slots = [world.connect() for _ in range(5)]
    joined: dict[int, str] = {}  # slot → user id of its subscription
    seen: set[str] = set()
    for step in ops:
        kind, i = step[0], step[1]
        client = slots[i]
        if kind == "subscribe":
            client.frames()  # what other members' joins sent it earlier
            client.join(CH, step[2], {"v": step[3]})
            frames = client.frames()
            if i in joined:
                assert frames[0]["data"]["message"] == f"Existing subscription to channel {CH}"
            else:
                joined[i] = step[2]
                assert set(presence_data(frames[0])["ids"]) == {*joined.values(), "observer"}
        elif kind == "unsubscribe":
            client.unsubscribe(CH)
            joined.pop(i, None)
        else:
            client.disconnect()
            joined.pop(i, None)
            slots[i] = world.connect()
        expected = set(joined.values())
        current = members(world)
        assert set(current) == expected | {"observer"}
        for uid in expected:
            assert current[uid][1] == sum(1 for u in joined.values() if u == uid)
        replay(observer, seen)
        assert seen == expected
        assert world.hub.channel_state(world.app.id, CH).subscription_count == len(joined) + 1


def test_signed_in_member_is_held_to_the_presence_limits() -> None:
    world = World()
    long_id, big_info = world.clients(2)
    long_id.signin({"id": "x" * 129})  # a valid sign-in id (up to 200) but too long for presence
    long_id.frames()
    long_id.subscribe(CH, sign=True)
    assert long_id.frames()[0] == error_frame(None, "Presence user_id too long: at most 128 characters")
    big_info.signin({"id": "b", "user_info": {"k": "x" * 1020}})
    big_info.frames()
    big_info.subscribe(CH, sign=True)
    assert big_info.frames()[0] == error_frame(None, "Presence user_info too large: at most 1024 bytes")
    assert members(world) == {}
