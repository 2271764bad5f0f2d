"""User sign-in, #server-to-user channels, watchlists and terminate_user (pusher-protocol.md §1.4, §1.12)."""

from __future__ import annotations

import json

import pytest
from helpers import KEY, SOCKET, World, error_frame, internal, succeeded

USER_VECTOR = f"{KEY}:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
USER_VECTOR_PY = f"{KEY}:d06dc389319077f890321aeac54e04868921e1601686928f61fc9bf702e92830"


def watchlist(*events: tuple[str, list[str]]) -> dict[str, object]:
    return internal("pusher_internal:watchlist_events",
                    {"events": [{"name": name, "user_ids": ids} for name, ids in events]})


# --- sign-in -----------------------------------------------------------------------------------------------

def test_signin_with_the_docs_vector() -> None:
    world = World()
    client = world.connect(SOCKET)
    client.send("pusher:signin", {"auth": USER_VECTOR, "user_data": '{"id":"12345"}'})
    assert client.raw_frames() == [
        b'{"event":"pusher:signin_success","data":"{\\"user_data\\":\\"{\\\\\\"id\\\\\\"'
        b':\\\\\\"12345\\\\\\"}\\"}"}']
    assert client.conn.user_id == "12345"
    assert client.conn.authorized
    assert client.peer.closed is None


def test_signin_success_carries_user_data_verbatim() -> None:
    world = World()
    client = world.connect(SOCKET)
    client.send("pusher:signin", {"auth": USER_VECTOR_PY, "user_data": '{"id": "12345"}'})
    [frame] = client.frames()
    assert frame["event"] == "pusher:signin_success"
    assert isinstance(frame["data"], str)
    assert json.loads(frame["data"]) == {"user_data": '{"id": "12345"}'}
    assert "channel" not in frame


def test_signin_with_data_as_a_json_string() -> None:
    world = World()
    client = world.connect(SOCKET)
    client.send("pusher:signin", json.dumps({"auth": USER_VECTOR, "user_data": '{"id":"12345"}'}))
    assert client.events() == ["pusher:signin_success"]


@pytest.mark.parametrize("auth", [f"{KEY}:{'0' * 64}", f"otherkey:{USER_VECTOR.split(':')[1]}", USER_VECTOR_PY])
def test_bad_signature_closes_4009_after_an_error_frame(auth: str) -> None:
    world = World()
    client = world.connect(SOCKET)
    client.send("pusher:signin", {"auth": auth, "user_data": '{"id":"12345"}'})
    reason = f'Invalid signature: Expected HMAC SHA256 hex digest of 1234.1234::user::{{"id":"12345"}}, but got {auth}'
    assert client.peer.closed == (4009, reason)
    assert client.frames() == [error_frame(4009, reason)]
    assert client.conn.closing
    assert client.conn not in world.hub.state(world.app).connections


@pytest.mark.parametrize("data", [None, {}, {"auth": "x"}, {"auth": "x", "user_data": {"id": "1"}}, "not json"])
def test_malformed_signin_closes_4009(data: object) -> None:
    world = World()
    client = world.connect()
    client.send("pusher:signin", data)
    reason = "pusher:signin needs data.auth and data.user_data (a JSON string)"
    assert client.peer.closed == (4009, reason)
    assert client.frames() == [error_frame(4009, reason)]


@pytest.mark.parametrize("user", [{"name": "no id"}, {"id": ""}, {"id": 12345}, {"id": "a b"}, {"id": "x" * 201},
                                  ["12345"]])
def test_invalid_user_id_closes_4009(user: object) -> None:
    world = World()
    client = world.connect()
    client.signin(user)  # type: ignore[arg-type]
    assert client.peer.closed is not None
    assert client.peer.closed[0] == 4009
    assert client.peer.closed[1].startswith("Invalid user_data: id must be a non-empty string")
    assert client.conn.user_id is None


def test_signed_in_as_another_id_closes_4009() -> None:
    world = World()
    client = world.connect()
    client.signin({"id": "u1"})
    client.signin({"id": "u1"})  # the same id again is fine
    assert client.events() == ["pusher:signin_success", "pusher:signin_success"]
    assert client.peer.closed is None
    client.signin({"id": "u2"})
    assert client.peer.closed == (4009, "Connection is already signed in as u1")
    assert client.frames() == [error_frame(4009, "Connection is already signed in as u1")]
    assert world.hub.state(world.app).users == {}


# --- #server-to-user- ----------------------------------------------------------------------------------

def test_user_channel_only_for_the_signed_in_user() -> None:
    world = World()
    stranger, other, owner = world.clients(3)
    stranger.subscribe("#server-to-user-u1")
    message = "Only the signed-in user may subscribe to #server-to-user-u1"
    assert stranger.frames() == [error_frame(4009, message),
                                 {"event": "pusher:subscription_error", "channel": "#server-to-user-u1",
                                  "data": {"type": "AuthError", "error": message, "status": 403}}]
    assert stranger.peer.closed is None
    other.signin({"id": "u2"})
    other.subscribe("#server-to-user-u1")
    assert other.frames()[1] == error_frame(4009, message)
    owner.signin({"id": "u1"})
    owner.subscribe("#server-to-user-u1")  # pusher-js subscribes with auth ""
    assert owner.frames() == [internal("pusher:signin_success", {"user_data": '{"id": "u1"}'}),
                              succeeded("#server-to-user-u1")]


def test_send_to_user_reaches_every_signed_in_connection_of_the_user() -> None:
    world = World()
    tab1, tab2, other = world.clients(3)
    tab1.signin({"id": "u1"})
    tab2.signin({"id": "u1"})
    other.signin({"id": "u2"})
    for client in (tab1, tab2, other):
        client.frames()
    world.hub.publish(world.app, "#server-to-user-u1", "ev", '{"x":1}')
    expected = [{"event": "ev", "data": '{"x":1}', "channel": "#server-to-user-u1"}]
    assert tab1.frames() == expected
    assert tab2.frames() == expected
    assert other.frames() == []
    world.hub.publish(world.app, "#server-to-user-u1", "ev", "d", exclude_socket_id=tab1.socket_id)
    assert tab1.frames() == []
    assert len(tab2.frames()) == 1


def test_terminate_user_closes_its_connections_with_4009() -> None:
    world = World()
    tab1, tab2, other, unsigned = world.clients(4)
    tab1.signin({"id": "u1"})
    tab2.signin({"id": "u1"})
    other.signin({"id": "u2"})
    unsigned.join("presence-x", "u1")  # a presence member "u1" is not a signed-in user
    for client in (tab1, tab2):
        client.frames()
    assert world.hub.terminate_user(world.app.id, "u1") == 2
    for client in (tab1, tab2):
        assert client.peer.closed == (4009, "You got disconnected by the app.")
        assert client.frames() == [error_frame(4009, "You got disconnected by the app.")]
    assert other.peer.closed is None
    assert unsigned.peer.closed is None
    assert world.hub.terminate_user(world.app.id, "u1") == 0
    assert world.hub.terminate_user("nope", "u1") == 0


# --- watchlist --------------------------------------------------------------------------------------------

def test_watchlist_status_on_signin_then_online_and_offline() -> None:
    world = World()
    b = world.connect()
    b.signin({"id": "b"})
    watcher = world.connect()
    watcher.signin({"id": "w", "watchlist": ["a", "b", "c"]})
    frames = watcher.raw_frames()
    assert frames[1] == (b'{"event":"pusher_internal:watchlist_events","data":"{\\"events\\":[{\\"name\\":\\"online'
                         b'\\",\\"user_ids\\":[\\"b\\"]},{\\"name\\":\\"offline\\",\\"user_ids\\":[\\"a\\",\\"c\\"]}]}"}')
    assert len(frames) == 2
    a1, a2 = world.clients(2)
    a1.signin({"id": "a"})
    assert watcher.frames() == [watchlist(("online", ["a"]))]
    a2.signin({"id": "a"})  # a second connection of a user already online
    assert watcher.frames() == []
    a1.disconnect()
    assert watcher.frames() == []
    world.hub.close(a2.conn, 4200, "restart")
    assert watcher.frames() == [watchlist(("offline", ["a"]))]
    b.disconnect()
    assert watcher.frames() == [watchlist(("offline", ["b"]))]
    # a watcher that left is told nothing more
    watcher.disconnect()
    a1 = world.connect()
    a1.signin({"id": "a"})
    assert watcher.frames() == []
    assert world.hub.state(world.app).watchers == {}


def test_watchlist_all_offline_and_empty() -> None:
    world = World()
    watcher, plain = world.clients(2)
    watcher.signin({"id": "w", "watchlist": ["x", 7]})
    assert watcher.frames()[1] == watchlist(("offline", ["x", "7"]))
    plain.signin({"id": "p"})
    assert plain.events() == ["pusher:signin_success"]


def test_watchlist_over_100_ids_gets_4302_after_success() -> None:
    world = World()
    watcher = world.connect()
    ids = [f"u{i}" for i in range(101)]
    watcher.signin({"id": "w", "watchlist": ids})
    frames = watcher.frames()
    assert [f["event"] for f in frames] == ["pusher:signin_success", "pusher_internal:watchlist_events",
                                            "pusher:error"]
    assert frames[1] == watchlist(("offline", ids[:100]))
    assert frames[2] == error_frame(4302, "Watchlist limit exceeded: only the first 100 user ids are watched")
    assert watcher.peer.closed is None
    assert watcher.conn.user_id == "w"
    assert watcher.conn.watchlist == ids[:100]
    late = world.connect()
    late.signin({"id": "u100"})  # the 101st is not watched
    assert watcher.frames() == []
    early = world.connect()
    early.signin({"id": "u99"})
    assert watcher.frames() == [watchlist(("online", ["u99"]))]


def test_exactly_100_ids_is_no_error() -> None:
    world = World()
    watcher = world.connect()
    watcher.signin({"id": "w", "watchlist": [str(i) for i in range(100)]})
    assert watcher.events() == ["pusher:signin_success", "pusher_internal:watchlist_events"]
