"""pusher-js 8 (Node) against the real server: payload fidelity, re-subscription, limits and presence clean-up.

The sharper edges of the same flows as the other test_pusher_js* modules: data that is hard to re-encode,
channel names with every allowed character, leaving and rejoining, the presence and watchlist limits, and what
other members see when the server terminates a user.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from js_helpers import JsClient, JsHarness, js_fixture, node_env_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.node

TRICKY = {
    "quotes": 'say "hi" \\ back',
    "unicode": "héllo wörld ✓ 😀 \u2028 line-separator",
    "html": "<script>alert(1)</script>&amp;",
    "numbers": [0, -1, 1.5, 1e20],
    "empty": {},
    "null": None,
    "nested": {"a": [{"b": [True, False]}]},
}


def marker(server: Any, channel: str, *clients: JsClient) -> None:
    server.pusher().trigger(channel, "marker", {})
    for client in clients:
        client.wait_for(type="event", channel=channel, event="marker")


def test_payloads_survive_the_round_trip(server: Any, js: JsHarness) -> None:
    client = js.client(server)
    client.subscribe("payloads")
    api = server.pusher()
    api.trigger("payloads", "tricky", TRICKY)
    big = {"blob": "x" * 9000}  # under the 10 KB data limit
    api.trigger("payloads", "big", big)
    api.trigger("payloads", "json-looking-string", '{"not": "an object for the sender"}')
    assert client.wait_for(type="event", channel="payloads", event="tricky")["data"] == TRICKY
    assert client.wait_for(type="event", channel="payloads", event="big")["data"] == big
    # pusher-js JSON.parses string data when it can: the server must pass the string through verbatim
    frame = client.wait_for(lambda e: '"json-looking-string"' in e["frame"], type="raw")
    assert json.loads(frame["frame"])["data"] == '{"not": "an object for the sender"}'


def test_client_event_data_passes_through_unchanged(server: Any, js: JsHarness) -> None:
    sender, receiver = js.client(server, name="sender"), js.client(server, name="receiver")
    for client in (sender, receiver):
        client.subscribe("private-relay")
    receiver.bind("private-relay", "client-obj")
    receiver.bind("private-relay", "client-str")
    sender.trigger("private-relay", "client-obj", TRICKY)
    sender.trigger("private-relay", "client-str", "just a string")
    assert receiver.wait_for(type="bound", event="client-obj")["data"] == TRICKY
    assert receiver.wait_for(type="bound", event="client-str")["data"] == "just a string"


@pytest.mark.parametrize("channel", ["foo-bar_1234@=,.;", "private-A.b_c-1@x=y,z;", "presence-Room.42"])
def test_channel_names_with_every_allowed_character(server: Any, js: JsHarness, channel: str) -> None:
    client = js.client(server, presence={"user_id": "n", "user_info": {}})
    client.subscribe(channel)
    server.pusher().trigger(channel, "named", {"channel": channel})
    assert client.wait_for(type="event", channel=channel, event="named")["data"] == {"channel": channel}
    assert server.pusher().channel_info(channel)["occupied"] is True


def test_unsubscribe_then_subscribe_again(server: Any, js: JsHarness) -> None:
    client = js.client(server)
    client.subscribe("again")
    client.unsubscribe("again")
    client.sync()
    client.subscribe("again")
    server.pusher().trigger("again", "back", {})
    client.wait_for(type="event", channel="again", event="back")
    marker(server, "again", client)
    assert len(client.received("again", "back")) == 1, "delivered twice: the old subscription survived"
    assert server.pusher().channel_info("again", ["subscription_count"])["subscription_count"] == 1


def test_presence_leave_and_rejoin(server: Any, js: JsHarness) -> None:
    channel = "presence-rejoin"
    stay = js.client(server, name="stay", presence={"user_id": "s", "user_info": {}})
    hop = js.client(server, name="hop", presence={"user_id": "h", "user_info": {"v": 1}})
    stay.subscribe(channel)
    hop.subscribe(channel)
    stay.wait_for(type="event", channel=channel, event="pusher:member_added")
    hop.unsubscribe(channel)
    stay.wait_for(type="event", channel=channel, event="pusher:member_removed")
    start = stay.mark()
    hop.presence = {"user_id": "h", "user_info": {"v": 2}}
    hop.subscribe(channel)
    added = stay.wait_for(type="event", channel=channel, event="pusher:member_added", start=start)
    assert added["data"] == {"id": "h", "info": {"v": 2}}
    assert hop.members(channel)["count"] == 2
    assert stay.members(channel)["members"] == {"s": {}, "h": {"v": 2}}


def test_presence_member_limit(server_factory: Any, js: JsHarness) -> None:
    server = server_factory([{"id": "313131", "key": "small-key", "secret": "small-secret",
                              "max_presence_members": 2}])
    channel = "presence-small"
    members = [js.client(server, name=f"m{i}", presence={"user_id": f"m{i}", "user_info": {}}) for i in range(2)]
    for client in members:
        client.subscribe(channel)
    # another tab of a member is not a new member
    tab = js.client(server, name="m0-tab", presence={"user_id": "m0", "user_info": {}})
    tab.subscribe(channel)
    extra = js.client(server, name="extra", presence={"user_id": "m2", "user_info": {}})
    extra.subscribe(channel, wait=False)
    extra.wait_for(lambda e: e["type"] == "error" or e.get("event") == "pusher:subscription_error")
    extra.sync()
    assert extra.find(type="event", channel=channel, event="pusher:subscription_succeeded") == []
    marker(server, channel, *members)
    assert [e["data"]["id"] for e in members[0].find(type="event", event="pusher:member_added")] == ["m1"]
    assert server.pusher().channel_info(channel, ["user_count"])["user_count"] == 2


def test_watchlist_over_100_ids(server: Any, js: JsHarness) -> None:
    watchlist = [f"w{i}" for i in range(101)]
    client = js.client(server, user={"id": "big-watcher", "watchlist": watchlist})
    client.signin()
    client.wait_for(type="message", event="pusher:signin_success")
    error = client.wait_for(type="message", event="pusher:error")
    assert error["data"]["code"] == 4302, error
    # the sign-in stands: the user channel works
    client.wait_for(type="message", event="pusher_internal:subscription_succeeded",
                    channel="#server-to-user-big-watcher")
    server.pusher().send_to_user("big-watcher", "ok", {})
    client.wait_for(type="user_event", event="ok")
    # the first 100 are watched, the 101st is not
    start = client.mark()
    first = js.client(server, name="w0", user={"id": "w0"})
    first.signin()
    assert client.wait_for(type="watchlist", event="online", start=start)["data"]["user_ids"] == ["w0"]
    last = js.client(server, name="w100", user={"id": "w100"})
    last.signin()
    last.wait_for(type="message", event="pusher:signin_success")
    server.pusher().send_to_user("big-watcher", "marker", {})
    client.wait_for(type="user_event", event="marker")
    online = [e["data"]["user_ids"] for e in client.find(type="watchlist", event="online", start=start)]
    assert online == [["w0"]], online


def test_terminated_user_leaves_presence(server: Any, js: JsHarness) -> None:
    channel = "presence-terminate"
    victim = js.client(server, name="victim", user={"id": "v"}, presence={"user_id": "v", "user_info": {}})
    victim.signin()
    victim.wait_for(type="message", event="pusher:signin_success")
    witness = js.client(server, name="witness", presence={"user_id": "w", "user_info": {}})
    victim.subscribe(channel)
    witness.subscribe(channel)
    assert witness.members(channel)["count"] == 2
    server.pusher().terminate_user_connections("v")
    assert victim.wait_for(type="closed")["code"] == 4009
    removed = witness.wait_for(type="event", channel=channel, event="pusher:member_removed")
    assert removed["data"]["id"] == "v"
    assert [u["id"] for u in server.pusher().users_info(channel)["users"]] == ["w"]


def test_a_killed_client_leaves_presence_and_the_count(server: Any, js: JsHarness) -> None:
    # a crashed tab: no close frame, only the TCP connection going away
    channel = "presence-crash"
    crash = js.client(server, name="crash", presence={"user_id": "c", "user_info": {}})
    witness = js.client(server, name="witness", presence={"user_id": "w", "user_info": {}})
    crash.subscribe(channel)
    crash.subscribe("crash-count")
    witness.subscribe(channel)
    crash.process.kill()
    removed = witness.wait_for(type="event", channel=channel, event="pusher:member_removed", timeout=10)
    assert removed["data"]["id"] == "c"
    assert server.pusher().channel_info("crash-count")["occupied"] is False
