"""pusher-js 8 (Node) against the real server: connection, public, private and encrypted channels.

Publishing and auth responses come from pusher-http-python, as in a Django app. "Did not receive" is never
asserted after a sleep: a later marker event on the same connection proves the earlier one was not sent.
Harness: tests/integration/js_helpers.py and tests/js/driver.mjs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from js_helpers import JsClient, JsHarness, bad_signer, error_code, js_fixture, master_key_b64, node_env_fixture  # noqa: F401  (fixtures)

pytestmark = pytest.mark.node

SOCKET_ID = re.compile(r"\A\d+\.\d+\Z")


def publish_marker(server: Any, channel: str, *clients: JsClient) -> None:
    """Publish a marker on ``channel`` and wait until every client got it (frames arrive in order)."""
    server.pusher().trigger(channel, "marker", {"marker": True})
    for client in clients:
        client.wait_for(type="event", channel=channel, event="marker")


def test_connect_reports_state_and_socket_id(server: Any, js: JsHarness) -> None:
    client = js.client(server, connect=False)
    socket_id = client.connect()
    assert socket_id is not None and SOCKET_ID.match(socket_id), socket_id
    assert client.wait_for(type="state", current="connected")["previous"] == "connecting"
    assert client.state() == {"state": "connected", "socket_id": socket_id, "user": None, "transport": "ws"}
    # a second client gets a different socket id
    assert js.client(server).socket_id != socket_id


def test_unknown_app_key_is_refused_without_retry(server: Any, js: JsHarness) -> None:
    client = js.client(server, connect=False)
    client.app = type(server.app)(server.app.id, "no-such-key", server.app.secret)
    client.connect(wait=False)
    client.wait_for(lambda e: error_code(e) == 4001, type="error")
    # 4001 is in 4000-4099: pusher-js gives up instead of reconnecting
    client.wait_for(type="state", current="disconnected")
    assert client.find(type="connected") == []
    assert client.state()["state"] == "disconnected"


def test_connection_quota(server_factory: Any, js: JsHarness) -> None:
    server = server_factory([{"id": "700700", "key": "quota-key", "secret": "quota-secret", "max_connections": 1}])
    first = js.client(server, name="first")
    second = js.client(server, name="second", connect=False)
    second.connect(wait=False)
    second.wait_for(lambda e: error_code(e) == 4004, type="error")
    second.wait_for(type="state", current="disconnected")
    assert second.find(type="connected") == []
    assert first.state()["state"] == "connected"
    # the slot is free again once the first client leaves
    first.disconnect()
    third = js.client(server, name="third", connect=False)
    assert third.connect() is not None


def test_activity_timeout_ping_pong(server_factory: Any, js: JsHarness) -> None:
    # connection_established advertises activity_timeout; after that much silence pusher-js sends pusher:ping
    # and expects pusher:pong (else it drops the connection), and the server may ping first (pusher-js answers
    # pusher:pong). Either way the idle connection must stay up.
    server = server_factory([{"id": "800800", "key": "ping-key", "secret": "ping-secret", "activity_timeout": 1}])
    client = js.client(server)
    connected_at = client.wait_for(type="connected")["t"]

    def liveness(event: dict[str, Any]) -> bool:
        return json.loads(event["frame"]).get("event") in ("pusher:ping", "pusher:pong")

    beats = client.wait_count(3, liveness, type="raw", timeout=8)
    assert beats[0]["t"] - connected_at >= 900, "liveness traffic before the advertised activity timeout"
    assert client.find(type="closed") == []
    assert client.state()["state"] == "connected"
    assert client.find(type="state", previous="connected") == []


def test_public_channel_receives_published_events(server: Any, js: JsHarness) -> None:
    client = js.client(server)
    succeeded = client.subscribe("public-room")
    assert succeeded is not None and succeeded["data"] == {}
    client.wait_for(type="message", event="pusher_internal:subscription_succeeded", channel="public-room")

    api = server.pusher()
    api.trigger("public-room", "data-object", {"text": "héllo", "n": 42, "nested": {"list": [1, 2]}})
    api.trigger("public-room", "data-string", "plain string")
    api.trigger(["public-room", "elsewhere"], "two-channels", {"ok": True})
    api.trigger_batch([{"channel": "public-room", "name": "batched", "data": {"i": 1}},
                       {"channel": "public-room", "name": "batched", "data": {"i": 2}}])

    assert client.wait_for(type="event", channel="public-room", event="data-object")["data"] == {
        "text": "héllo", "n": 42, "nested": {"list": [1, 2]}}
    assert client.wait_for(type="event", channel="public-room", event="data-string")["data"] == "plain string"
    assert client.wait_for(type="event", channel="public-room", event="two-channels")["data"] == {"ok": True}
    batched = client.wait_count(2, type="event", channel="public-room", event="batched")
    assert [e["data"] for e in batched] == [{"i": 1}, {"i": 2}]
    # order on the wire is the publish order
    client.sync()  # every frame received before the pong has been reported
    names = [e["event"] for e in client.frames(channel="public-room")]
    assert names[-5:] == ["data-object", "data-string", "two-channels", "batched", "batched"]
    # data is JSON-encoded as a string on the wire (Pusher's double encoding), for pusher_internal: events too
    succeeded_frames = [json.loads(e["frame"]) for e in client.find(type="raw")
                        if '"pusher_internal:subscription_succeeded"' in e["frame"]]
    assert succeeded_frames == [{"event": "pusher_internal:subscription_succeeded", "data": "{}",
                                 "channel": "public-room"}]
    raw = [json.loads(e["frame"]) for e in client.find(type="raw") if '"data-object"' in e["frame"]]
    assert raw and isinstance(raw[0]["data"], str)
    assert json.loads(raw[0]["data"]) == {"text": "héllo", "n": 42, "nested": {"list": [1, 2]}}


def test_socket_id_excludes_the_publisher(server: Any, js: JsHarness) -> None:
    sender, other = js.client(server, name="sender"), js.client(server, name="other")
    for client in (sender, other):
        client.subscribe("news")
    server.pusher().trigger("news", "update", {"v": 1}, socket_id=sender.socket_id)
    publish_marker(server, "news", sender, other)
    assert other.received("news", "update") == [{"v": 1}]
    assert sender.received("news", "update") == []
    assert sender.frames(channel="news", event="update") == []


def test_unsubscribe_stops_delivery(server: Any, js: JsHarness) -> None:
    leaver, stayer = js.client(server, name="leaver"), js.client(server, name="stayer")
    for client in (leaver, stayer):
        client.subscribe("room")
        client.subscribe("lobby")
    server.pusher().trigger("room", "before", {})
    leaver.wait_for(type="event", channel="room", event="before")

    leaver.unsubscribe("room")
    leaver.sync()  # the server has handled the unsubscribe
    after = leaver.mark()
    server.pusher().trigger("room", "after", {"n": 1})
    publish_marker(server, "lobby", leaver)
    assert leaver.frames(start=after, channel="room") == [], "the server still sends on an unsubscribed channel"
    assert stayer.wait_for(type="event", channel="room", event="after")["data"] == {"n": 1}
    # occupancy seen through the HTTP API: one subscriber left
    info = server.pusher().channel_info("room", ["subscription_count"])
    assert info["occupied"] is True and info["subscription_count"] == 1


def test_private_channel_with_valid_auth(server: Any, js: JsHarness) -> None:
    client = js.client(server)
    client.subscribe("private-orders")
    request = client.auth_requests[-1]
    assert request["kind"] == "channel" and request["channel_name"] == "private-orders"
    assert request["socket_id"] == client.socket_id
    subscribe = [e for e in client.find(type="message") if e.get("event") == "pusher:error"]
    assert subscribe == []
    server.pusher().trigger("private-orders", "created", {"id": 7})
    assert client.wait_for(type="event", channel="private-orders", event="created")["data"] == {"id": 7}


def test_private_channel_with_wrong_secret_is_refused(server: Any, js: JsHarness) -> None:
    client = js.client(server, auth_signer=bad_signer(server))
    client.subscribe("lobby")
    client.subscribe("private-vault", wait=False)
    refused = client.wait_for(lambda e: (e["type"] == "error" and e["error"].get("type") == "PusherError")
                              or (e["type"] == "event" and e["event"] == "pusher:subscription_error"))
    client.sync()
    server.pusher().trigger("private-vault", "secret", {"leak": True})
    publish_marker(server, "lobby", client)
    assert client.find(type="event", channel="private-vault", event="pusher:subscription_succeeded") == [], refused
    assert client.frames(channel="private-vault", event="secret") == []
    assert client.frames(event="pusher_internal:subscription_succeeded", channel="private-vault") == []
    # a refused subscription is an error frame, not a closed connection
    assert client.state()["state"] == "connected"
    errors = client.frames(event="pusher:error")
    assert errors, "the server must say why the subscription failed (pusher:error)"
    assert "private-vault" in json.dumps(errors[0]["data"])
    assert server.pusher().channel_info("private-vault")["occupied"] is False


def test_private_channel_auth_for_another_socket_is_refused(server: Any, js: JsHarness) -> None:
    def auth_for_wrong_socket(kind: str, socket_id: str, channel: str | None) -> dict[str, Any]:
        return dict(server.pusher().authenticate(channel, "1234.5678"))

    client = js.client(server, auth_handler=auth_for_wrong_socket)
    client.subscribe("private-other", wait=False)
    client.wait_for(type="message", event="pusher:error")
    client.sync()
    assert client.find(type="event", event="pusher:subscription_succeeded") == []


def test_encrypted_channel_is_decrypted_by_pusher_js(server: Any, js: JsHarness) -> None:
    key = master_key_b64()
    api = server.pusher(encryption_master_key_base64=key)
    client = js.client(server, auth_signer=api)
    client.subscribe("private-encrypted-x")
    response = client.authorize("channel", client.socket_id, "private-encrypted-x")
    assert isinstance(response["shared_secret"], str) and len(response["shared_secret"]) == 44

    payload = {"secret": "only for you", "n": [1, 2, 3]}
    api.trigger("private-encrypted-x", "sealed", payload)
    assert client.wait_for(type="event", channel="private-encrypted-x", event="sealed")["data"] == payload
    # the server relayed the ciphertext untouched: the frame carries nonce + ciphertext, not the plaintext
    frame = client.wait_for(type="message", channel="private-encrypted-x", event="sealed")
    assert set(frame["data"]) == {"nonce", "ciphertext"}
    assert "only for you" not in json.dumps(client.find(type="raw"))


def test_encrypted_channel_with_a_wrong_master_key_does_not_decrypt(server: Any, js: JsHarness) -> None:
    client = js.client(server, auth_signer=server.pusher(encryption_master_key_base64=master_key_b64()))
    client.subscribe("private-encrypted-y")
    client.subscribe("lobby")
    server.pusher(encryption_master_key_base64=master_key_b64()).trigger("private-encrypted-y", "sealed", {"a": 1})
    publish_marker(server, "lobby", client)
    # pusher-js got the frame but could not open it, so app code sees nothing
    assert client.frames(channel="private-encrypted-y", event="sealed")
    assert client.received("private-encrypted-y", "sealed") == []
