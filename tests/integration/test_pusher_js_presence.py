"""pusher-js 8 (Node) against the real server: presence channels and client events.

Members and client events are observed through pusher-js' own API (``channel.members``, ``pusher:member_added``,
``channel.bind('client-x', (data, metadata) => ...)``); presence auth responses come from pusher-http-python.
"""

from __future__ import annotations

from typing import Any

import pytest
from js_helpers import JsClient, JsHarness, js_fixture, node_env_fixture, wait_subscription_count  # noqa: F401

pytestmark = pytest.mark.node


def member(user_id: Any, name: str) -> dict[str, Any]:
    return {"user_id": user_id, "user_info": {"name": name}}


def publish_marker(server: Any, channel: str, *clients: JsClient) -> None:
    """Publish a marker and wait until every client got it: anything sent before it has arrived too."""
    server.pusher().trigger(channel, "marker", {})
    for client in clients:
        client.wait_for(type="event", channel=channel, event="marker")


def events(client: JsClient, channel: str, name: str, start: int = 0) -> list[Any]:
    return client.received(channel, name, start)


# -- presence ------------------------------------------------------------------------------------------

def test_presence_members_join_and_leave(server: Any, js: JsHarness) -> None:
    ann = js.client(server, name="ann", presence=member("u1", "Ann"))
    bob = js.client(server, name="bob", presence=member("u2", "Bob"))
    channel = "presence-room"

    ann.subscribe(channel)
    assert ann.members(channel) == {"count": 1, "me": {"id": "u1", "info": {"name": "Ann"}},
                                    "members": {"u1": {"name": "Ann"}}, "subscribed": True}
    bob.subscribe(channel)
    assert bob.members(channel) == {"count": 2, "me": {"id": "u2", "info": {"name": "Bob"}},
                                    "members": {"u1": {"name": "Ann"}, "u2": {"name": "Bob"}}, "subscribed": True}
    added = ann.wait_for(type="event", channel=channel, event="pusher:member_added")
    assert added["data"] == {"id": "u2", "info": {"name": "Bob"}}
    assert ann.members(channel)["count"] == 2
    # the joining member is not told about itself
    publish_marker(server, channel, bob)
    assert events(bob, channel, "pusher:member_added") == []

    api = server.pusher()
    assert sorted(u["id"] for u in api.users_info(channel)["users"]) == ["u1", "u2"]
    info = api.channel_info(channel, ["user_count"])
    assert info["occupied"] is True and info["user_count"] == 2

    bob.disconnect()
    removed = ann.wait_for(type="event", channel=channel, event="pusher:member_removed")
    assert removed["data"] == {"id": "u2", "info": {"name": "Bob"}}
    assert ann.members(channel)["count"] == 1
    assert [u["id"] for u in api.users_info(channel)["users"]] == ["u1"]
    assert api.channel_info(channel, ["user_count"])["user_count"] == 1


def test_presence_same_user_in_two_tabs_counts_once(server: Any, js: JsHarness) -> None:
    channel = "presence-tabs"
    watcher = js.client(server, name="watcher", presence=member("w", "Watcher"))
    tab1 = js.client(server, name="tab1", presence=member("u2", "Bob"))
    tab2 = js.client(server, name="tab2", presence=member("u2", "Bob"))
    watcher.subscribe(channel)

    tab1.subscribe(channel)
    watcher.wait_for(type="event", channel=channel, event="pusher:member_added")
    tab2.subscribe(channel)
    assert tab2.members(channel)["count"] == 2  # w and u2, not 3
    publish_marker(server, channel, watcher, tab1, tab2)
    assert len(events(watcher, channel, "pusher:member_added")) == 1, "second tab announced as a new member"
    assert events(tab1, channel, "pusher:member_added") == [], "a tab was told its own user joined"
    assert watcher.members(channel)["count"] == 2
    api = server.pusher()
    assert api.channel_info(channel, ["user_count"])["user_count"] == 2
    assert sorted(u["id"] for u in api.users_info(channel)["users"]) == ["u2", "w"]

    for tab in (tab1, tab2):
        tab.subscribe("tabs")
    tab1.disconnect()
    wait_subscription_count(server, "tabs", 1)  # the server has handled tab1's close
    publish_marker(server, channel, watcher, tab2)
    assert events(watcher, channel, "pusher:member_removed") == [], "removed while another tab is still there"
    assert api.channel_info(channel, ["user_count"])["user_count"] == 2

    tab2.unsubscribe(channel)
    removed = watcher.wait_for(type="event", channel=channel, event="pusher:member_removed")
    assert removed["data"]["id"] == "u2"
    assert watcher.members(channel)["count"] == 1
    assert [u["id"] for u in api.users_info(channel)["users"]] == ["w"]


def test_presence_integer_user_id_from_pusher_http_python(server: Any, js: JsHarness) -> None:
    # Django apps pass user.pk: pusher-http-python signs {"user_id": 10, ...} with an integer
    first = js.client(server, presence=member(10, "Ten"))
    second = js.client(server, presence=member(11, "Eleven"))
    first.subscribe("presence-ints")
    second.subscribe("presence-ints")
    state = second.members("presence-ints")
    assert state["count"] == 2
    assert state["me"] is not None and state["me"]["info"] == {"name": "Eleven"}
    assert {str(k) for k in state["members"]} == {"10", "11"}
    added = first.wait_for(type="event", channel="presence-ints", event="pusher:member_added")
    assert str(added["data"]["id"]) == "11"


# -- client events -------------------------------------------------------------------------------------

def test_client_event_on_private_channel(server: Any, js: JsHarness) -> None:
    alice, bob = js.client(server, name="alice"), js.client(server, name="bob")
    for client in (alice, bob):
        client.subscribe("private-chat")
    bob.bind("private-chat", "client-hello")

    assert alice.trigger("private-chat", "client-hello", {"text": "hi bob"}) is True
    got = bob.wait_for(type="bound", channel="private-chat", event="client-hello")
    assert got["data"] == {"text": "hi bob"}
    assert "user_id" not in (got["metadata"] or {}), "user_id is only added on presence channels"
    alice.sync()
    publish_marker(server, "private-chat", alice)
    assert alice.frames(channel="private-chat", event="client-hello") == [], "the sender got its own client event"


def test_client_event_on_presence_channel_carries_user_id(server: Any, js: JsHarness) -> None:
    alice = js.client(server, name="alice", presence=member("alice-1", "Alice"))
    bob = js.client(server, name="bob", presence=member("bob-1", "Bob"))
    for client in (alice, bob):
        client.subscribe("presence-chat")
    bob.bind("presence-chat", "client-typing")
    alice.trigger("presence-chat", "client-typing", {"typing": True})
    got = bob.wait_for(type="bound", channel="presence-chat", event="client-typing")
    assert got["data"] == {"typing": True}
    assert got["metadata"] == {"user_id": "alice-1"}


def test_client_event_rate_limit(server: Any, js: JsHarness) -> None:
    sender, receiver = js.client(server, name="sender"), js.client(server, name="receiver")
    for client in (sender, receiver):
        client.subscribe("private-burst")
    assert all(sender.trigger_burst("private-burst", "client-burst", {"x": 1}, 15))

    error = sender.wait_for(type="message", event="pusher:error")
    assert error["data"]["code"] == 4301, error
    assert sender.wait_for(type="error")["error"] == {"type": "PusherError", "data": error["data"]}
    sender.sync()
    publish_marker(server, "private-burst", receiver, sender)
    delivered = events(receiver, "private-burst", "client-burst")
    assert 0 < len(delivered) < 15, f"{len(delivered)} of 15 delivered"
    assert [d["i"] for d in delivered] == list(range(len(delivered))), "the first events go through, in order"
    # 4301 is an error frame, not a close: the connection stays usable
    assert sender.find(type="closed") == []
    assert sender.state()["state"] == "connected"


def test_client_event_on_public_channel_is_rejected(server: Any, js: JsHarness) -> None:
    sender, receiver = js.client(server, name="sender"), js.client(server, name="receiver")
    for client in (sender, receiver):
        client.subscribe("public-chat")
    sender.trigger("public-chat", "client-hello", {"nope": True})
    sender.wait_for(type="message", event="pusher:error")
    publish_marker(server, "public-chat", receiver)
    assert receiver.frames(channel="public-chat", event="client-hello") == []
    assert sender.state()["state"] == "connected"


def test_client_event_when_the_app_disables_them(server_factory: Any, js: JsHarness) -> None:
    server = server_factory([{"id": "424243", "key": "quiet-key", "secret": "quiet-secret", "client_events": False}])
    sender, receiver = js.client(server, name="sender"), js.client(server, name="receiver")
    for client in (sender, receiver):
        client.subscribe("private-quiet")
    sender.trigger("private-quiet", "client-hello", {"nope": True})
    error = sender.wait_for(type="message", event="pusher:error")
    assert error["data"]["code"] == 4301, error
    publish_marker(server, "private-quiet", receiver)
    assert receiver.frames(channel="private-quiet", event="client-hello") == []


def test_client_event_from_a_non_member_is_not_delivered(server: Any, js: JsHarness) -> None:
    outsider, member_ = js.client(server, name="outsider"), js.client(server, name="member")
    member_.subscribe("private-club")
    outsider.subscribe("private-elsewhere")
    outsider.call("send_event", event="client-sneak", data={"x": 1}, channel="private-club")
    outsider.sync()
    publish_marker(server, "private-club", member_)
    assert member_.frames(channel="private-club", event="client-sneak") == []
