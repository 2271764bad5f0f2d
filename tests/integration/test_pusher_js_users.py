"""pusher-js 8 (Node) against the real server: user sign-in, server-to-user messages, watchlist, terminating
user connections and authorized connections (pusher-protocol.md §1.12).

``pusher.signin()`` asks the test for the user authentication response, computed with pusher-http-python's
``authenticate_user(socket_id, user_data)``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from js_helpers import (  # noqa: F401  (fixtures)
    JsClient,
    JsHarness,
    error_code,
    js_fixture,
    node_env_fixture,
    wait_subscription_count,
)

pytestmark = pytest.mark.node


def signed_in(js: JsHarness, server: Any, user: dict[str, Any], name: str | None = None, **kw: Any) -> JsClient:
    client = js.client(server, name=name or str(user["id"]), user=user, **kw)
    client.signin()
    client.wait_for(type="message", event="pusher:signin_success")
    # pusher-js then subscribes to the user's server-to-user channel
    client.wait_for(type="message", event="pusher_internal:subscription_succeeded",
                    channel=f"#server-to-user-{user['id']}")
    return client


def send_marker(server: Any, client: JsClient, user_id: str) -> None:
    """A server-to-user marker: once it arrived, everything sent to this connection before it has too."""
    server.pusher().send_to_user(user_id, "marker", {})
    client.wait_for(type="user_event", event="marker")


def test_signin_and_send_to_user(server: Any, js: JsHarness) -> None:
    user = {"id": "u1", "user_info": {"name": "Ann"}}
    ann = signed_in(js, server, user)
    success = ann.wait_for(type="message", event="pusher:signin_success")
    assert success["data"]["user_data"] == '{"id": "u1", "user_info": {"name": "Ann"}}'  # the signed string, as is
    assert ann.state()["user"] == user
    other = signed_in(js, server, {"id": "u9"})

    server.pusher().send_to_user("u1", "notice", {"text": "for Ann only"})
    assert ann.wait_for(type="user_event", event="notice")["data"] == {"text": "for Ann only"}
    send_marker(server, other, "u9")
    assert other.find(type="user_event", event="notice") == []
    assert other.frames(event="notice") == []


def test_send_to_user_reaches_every_connection_of_the_user(server: Any, js: JsHarness) -> None:
    tabs = [signed_in(js, server, {"id": "multi"}, name=f"tab{i}") for i in range(2)]
    server.pusher().send_to_user("multi", "hello", "plain")
    for tab in tabs:
        assert tab.wait_for(type="user_event", event="hello")["data"] == "plain"


def test_signin_with_a_wrong_signature_is_refused(server: Any, js: JsHarness) -> None:
    def forged(kind: str, socket_id: str, channel: str | None) -> dict[str, Any]:
        response = dict(server.pusher().authenticate_user(socket_id, {"id": "u1"}))
        response["user_data"] = '{"id": "admin"}'  # signed for u1, claims admin
        return response

    client = js.client(server, auth_handler=forged)
    client.signin()
    client.wait_for(lambda e: e["type"] in ("closed", "error"))
    assert client.find(type="message", event="pusher:signin_success") == []
    assert client.find(type="message", event="pusher_internal:subscription_succeeded",
                       channel="#server-to-user-admin") == []


def test_server_to_user_channel_needs_the_matching_sign_in(server: Any, js: JsHarness) -> None:
    # a raw subscribe to someone else's #server-to-user- channel must not succeed
    mallory = signed_in(js, server, {"id": "mallory"})
    mallory.call("send_event", event="pusher:subscribe", data={"auth": "", "channel": "#server-to-user-victim"})
    mallory.sync()
    server.pusher().send_to_user("victim", "private-note", {"secret": 1})
    send_marker(server, mallory, "mallory")
    assert mallory.find(type="message", channel="#server-to-user-victim", event="private-note") == []
    assert mallory.find(type="message", channel="#server-to-user-victim",
                        event="pusher_internal:subscription_succeeded") == []


def test_watchlist_online_then_offline(server: Any, js: JsHarness) -> None:
    watcher = signed_in(js, server, {"id": "u1", "watchlist": ["u2"]})
    # right after sign-in the watchlist's current status may be sent (u2 offline); never "online"
    send_marker(server, watcher, "u1")
    assert watcher.find(type="watchlist", event="online") == []
    for initial in watcher.find(type="watchlist", event="offline"):
        assert initial["data"]["user_ids"] == ["u2"]

    start = watcher.mark()
    friend = signed_in(js, server, {"id": "u2"})
    online = watcher.wait_for(type="watchlist", event="online", start=start)
    assert online["data"]["user_ids"] == ["u2"]
    raw = watcher.wait_for(lambda e: any(ev["name"] == "online" for ev in e["data"]["events"]),
                           type="message", event="pusher_internal:watchlist_events", start=start)
    assert raw.get("channel") is None

    start = watcher.mark()
    friend.disconnect()
    offline = watcher.wait_for(type="watchlist", event="offline", start=start)
    assert offline["data"]["user_ids"] == ["u2"]


def test_watchlist_reports_friends_already_online_at_sign_in(server: Any, js: JsHarness) -> None:
    signed_in(js, server, {"id": "early"})
    late = signed_in(js, server, {"id": "late", "watchlist": ["early", "absent"]})
    online = late.wait_for(type="watchlist", event="online")
    assert online["data"]["user_ids"] == ["early"]
    send_marker(server, late, "late")
    assert all("absent" not in e["data"]["user_ids"] for e in late.find(type="watchlist", event="online"))


def test_watchlist_one_user_in_two_tabs_goes_offline_once(server: Any, js: JsHarness) -> None:
    watcher = signed_in(js, server, {"id": "w", "watchlist": ["f"]})
    send_marker(server, watcher, "w")
    start = watcher.mark()
    tab1 = signed_in(js, server, {"id": "f"}, name="tab1")
    watcher.wait_for(type="watchlist", event="online", start=start)
    tab2 = signed_in(js, server, {"id": "f"}, name="tab2")
    for tab in (tab1, tab2):
        tab.subscribe("tabs")
    tab1.disconnect()
    wait_subscription_count(server, "tabs", 1)  # the server has handled tab1's close
    server.pusher().send_to_user("w", "marker-2", {})
    watcher.wait_for(type="user_event", event="marker-2")
    assert watcher.find(type="watchlist", event="offline", start=start) == [], "offline while a tab is signed in"
    assert len(watcher.find(type="watchlist", event="online", start=start)) == 1, "second tab reported online"
    tab2.disconnect()
    assert watcher.wait_for(type="watchlist", event="offline", start=start)["data"]["user_ids"] == ["f"]


def test_presence_without_channel_data_uses_the_signed_in_user(server: Any, js: JsHarness) -> None:
    # pusher-protocol.md §0.1 (5): a signed-in connection may omit channel_data on a presence channel
    def no_channel_data(kind: str, socket_id: str, channel: str | None) -> dict[str, Any]:
        api = server.pusher()
        if kind == "user":
            return dict(api.authenticate_user(socket_id, {"id": "solo", "user_info": {"name": "Solo"}}))
        return dict(api.authenticate(channel, socket_id))

    client = js.client(server, auth_handler=no_channel_data)
    client.signin()
    client.wait_for(type="message", event="pusher:signin_success")
    client.subscribe("presence-signed")
    members = client.members("presence-signed")
    assert members["count"] == 1
    assert members["me"] is not None and members["me"]["id"] == "solo"
    assert [u["id"] for u in server.pusher().users_info("presence-signed")["users"]] == ["solo"]


def test_terminate_user_connections(server: Any, js: JsHarness) -> None:
    first = signed_in(js, server, {"id": "bad"}, name="bad-tab1")
    second = signed_in(js, server, {"id": "bad"}, name="bad-tab2")
    good = signed_in(js, server, {"id": "good"})
    for client in (first, second, good):
        client.subscribe("lobby")

    server.pusher().terminate_user_connections("bad")
    for client in (first, second):
        closed = client.wait_for(type="closed")
        assert closed["code"] == 4009, closed
        client.wait_for(lambda e: error_code(e) == 4009, type="error")  # what app code sees
        client.wait_for(type="state", current="disconnected")
    # the others are untouched
    server.pusher().trigger("lobby", "still-here", {})
    assert good.wait_for(type="event", channel="lobby", event="still-here")["data"] == {}
    send_marker(server, good, "good")
    assert good.find(type="closed") == []
    assert good.state()["state"] == "connected"
    # 4009 is in 4000-4099: pusher-js does not reconnect
    for client in (first, second):
        closed_at = client.wait_for(type="closed")["t"]
        after = [e["current"] for e in client.find(type="state") if e["t"] >= closed_at]
        assert "connecting" not in after and "connected" not in after, after
        assert client.state()["state"] == "disconnected"
    assert server.pusher().channel_info("lobby", ["subscription_count"])["subscription_count"] == 1


def test_authorized_connections_close_clients_that_do_not_sign_in(server_factory: Any, js: JsHarness) -> None:
    server = server_factory([{"id": "500500", "key": "authz-key", "secret": "authz-secret",
                              "user_authentication_required": True, "user_authentication_timeout": 2}])
    anonymous = js.client(server, name="anonymous")
    connected_at = anonymous.wait_for(type="connected")["t"]
    member = signed_in(js, server, {"id": "member"})
    # Pusher docs: "a connection [that] does not subscribe to at least one private- or presence- channel
    # ... will be kicked off after a timeout" -- a private subscription authorizes the connection too
    private = js.client(server, name="private")
    private.subscribe("private-authorized")

    closed = anonymous.wait_for(type="closed", timeout=8)
    assert closed["code"] == 4009, closed
    waited = (closed["t"] - connected_at) / 1000
    assert 1.5 <= waited <= 4.5, f"closed after {waited:.2f}s, timeout is 2s"
    anonymous.wait_for(lambda e: error_code(e) == 4009, type="error")
    anonymous.wait_for(type="state", current="disconnected")

    # let the 2 s timeout (plus a margin) pass for the other two clients too
    last_connected = max(c.wait_for(type="connected")["t"] for c in (member, private)) / 1000
    time.sleep(max(0.0, last_connected + 2.5 - time.time()))
    # the signed-in client outlived the timeout and still gets messages
    send_marker(server, member, "member")
    assert member.find(type="closed") == []
    assert member.state()["state"] == "connected"
    # so did the one with a private subscription
    server.pusher().trigger("private-authorized", "still-here", {})
    private.wait_for(type="event", channel="private-authorized", event="still-here")
    assert private.find(type="closed") == [], private.find(type="closed")
