"""The HTTP API driven by pusher-http-python (every client method), observed through raw WebSocket subscribers.

Requests the SDK refuses to build (oversize data, too many channels, skewed timestamps) are signed by hand
and sent with ``requests``, exactly as the SDK would sign them (pusher-protocol.md §2.3, §2.4).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from typing import Any

import nacl.secret
import pusher
import pytest
import requests
from pusher.errors import PusherBadAuth, PusherBadRequest, PusherBadStatus, PusherError
from raw_helpers import RawClient, connect_raw, data_of, hmac_hex, signed, trigger_body

APP = {"id": "424242", "key": "test-key", "secret": "test-secret", "client_events": True}


@pytest.fixture
def server(server_factory: Any) -> Any:
    return server_factory([APP])


def subscribed(server: Any, channel: str, n: int = 1) -> list[RawClient]:
    clients = [connect_raw(server) for _ in range(n)]
    for client in clients:
        client.subscribe(channel)
    return clients


# -- trigger, trigger_batch, send_to_user ------------------------------------------------------


def test_trigger_one_channel_with_dict_and_str_data(server: Any) -> None:
    (sub,) = subscribed(server, "orders")
    p = server.pusher()
    assert p.trigger("orders", "created", {"id": 7, "text": "héllo"}) == {}
    frame = sub.expect("created")
    assert frame["channel"] == "orders"
    # The data string goes out exactly as the SDK serialised it (spaces, non-ASCII kept).
    assert frame["data"] == '{"id": 7, "text": "héllo"}'
    assert p.trigger("orders", "note", "plain text, not JSON") == {}
    assert sub.expect("note")["data"] == "plain text, not JSON"


def test_trigger_several_channels(server: Any) -> None:
    a, b, c = (subscribed(server, name)[0] for name in ("ch-a", "ch-b", "ch-c"))
    server.pusher().trigger(["ch-a", "ch-b"], "multi", {"n": 1})
    assert a.expect("multi")["channel"] == "ch-a"
    assert b.expect("multi")["channel"] == "ch-b"
    c.nothing(0.3)


def test_trigger_excludes_socket_id(server: Any) -> None:
    excluded, other = subscribed(server, "room", 2)
    p = server.pusher()
    p.trigger("room", "first", {"n": 1}, socket_id=excluded.socket_id)
    p.trigger("room", "second", {"n": 2})
    assert other.expect("first")["data"] == '{"n": 1}'
    assert other.expect("second")
    # The excluded connection's next frame is the second event: it never got the first.
    assert excluded.recv()["event"] == "second"


def test_trigger_batch_with_socket_id(server: Any) -> None:
    x1, x2 = subscribed(server, "bx", 2)
    (y,) = subscribed(server, "by")
    p = server.pusher()
    result = p.trigger_batch([
        {"channel": "bx", "name": "one", "data": {"i": 1}, "socket_id": x1.socket_id},
        {"channel": "by", "name": "two", "data": "two-data"},
        {"channel": "bx", "name": "three", "data": {"i": 3}},
    ])
    assert result == {}
    assert x2.expect("one")["data"] == '{"i": 1}'
    assert x2.expect("three")
    assert x1.recv()["event"] == "three"  # "one" was not sent to x1
    assert y.expect("two")["data"] == "two-data"


def test_send_to_user_reaches_signed_in_connection(server: Any) -> None:
    p = server.pusher()
    alice, bob = connect_raw(server), connect_raw(server)
    for client, user_id in ((alice, "alice"), (bob, "bob")):
        signin = p.authenticate_user(client.socket_id, {"id": user_id, "user_info": {"name": user_id}})
        client.send("pusher:signin", signin)
        success = client.expect("pusher:signin_success")
        assert json.loads(data_of(success)["user_data"])["id"] == user_id
        client.subscribe(f"#server-to-user-{user_id}")  # as pusher-js does after signing in
    assert p.send_to_user("alice", "private-note", {"hi": "alice"}) == {}
    frame = alice.expect("private-note")
    assert frame["data"] == '{"hi": "alice"}'
    bob.nothing(0.3)


# -- channels_info, channel_info, users_info ---------------------------------------------------


def presence_member(server: Any, channel: str, user_id: str, info: Any = None) -> RawClient:
    client = connect_raw(server)
    auth = server.pusher().authenticate(channel, client.socket_id, {"user_id": user_id, "user_info": info or {}})
    client.subscribe(channel, auth["auth"], auth["channel_data"])
    return client


def test_channels_info_with_prefix_filter_and_user_count(server: Any) -> None:
    p = server.pusher()
    keep = [presence_member(server, "presence-lobby", uid) for uid in ("u1", "u2")]
    keep.append(presence_member(server, "presence-lobby", "u1"))  # same user twice: one member
    keep += subscribed(server, "public-news", 2)
    everything = p.channels_info()
    assert set(everything["channels"]) == {"presence-lobby", "public-news"}
    assert everything["channels"]["public-news"] == {}
    assert p.channels_info(prefix_filter="public-") == {"channels": {"public-news": {}}}
    assert p.channels_info(prefix_filter="presence-", attributes=["user_count"]) == {
        "channels": {"presence-lobby": {"user_count": 2}}}
    # user_count is only for presence channels: 400 when the listing is not limited to them
    with pytest.raises(PusherBadRequest):
        p.channels_info(attributes=["user_count"])
    keep[0].close()


def test_channel_info_occupied_counts_and_users(server: Any) -> None:
    p = server.pusher()
    assert p.channel_info("nobody-here") == {"occupied": False}
    subs = subscribed(server, "busy", 3)
    assert p.channel_info("busy", ["subscription_count"]) == {"occupied": True, "subscription_count": 3}
    assert p.channel_info("busy") == {"occupied": True}
    members = [presence_member(server, "presence-team", uid, {"n": uid}) for uid in ("1", "2", "2")]
    info = p.channel_info("presence-team", ["user_count"])
    assert info == {"occupied": True, "user_count": 2}
    assert sorted(p.users_info("presence-team")["users"], key=lambda u: u["id"]) == [{"id": "1"}, {"id": "2"}]
    with pytest.raises(PusherBadRequest):
        p.channel_info("busy", ["user_count"])  # not a presence channel
    with pytest.raises(PusherBadRequest):
        p.users_info("busy")
    subs[0].close()
    members[2].close()
    deadline = time.monotonic() + 5
    while p.channel_info("presence-team", ["user_count"])["user_count"] != 2 or \
            p.channel_info("busy", ["subscription_count"])["subscription_count"] != 2:
        assert time.monotonic() < deadline, "counts did not follow the closed connections"
        time.sleep(0.05)


def test_channel_info_cache(server: Any) -> None:
    p = server.pusher()
    first = connect_raw(server)
    first.send("pusher:subscribe", {"channel": "cache-prices", "auth": ""})
    first.expect("pusher_internal:subscription_succeeded", "cache-prices")
    assert first.expect("pusher:cache_miss")["channel"] == "cache-prices"
    p.trigger("cache-prices", "price", {"eur": 3})
    first.expect("price")
    info = p.channel_info("cache-prices", ["cache"])
    assert info["occupied"] is True
    assert info["cache"]["data"] == '{"eur": 3}'
    assert 0 < info["cache"]["ttl"] <= 1800
    # A late subscriber gets the cached event right away.
    late = connect_raw(server)
    late.subscribe("cache-prices")
    frame = late.expect("price", "cache-prices")
    assert frame["data"] == '{"eur": 3}'


# -- authenticate outputs, terminate_user_connections -------------------------------------------


def test_authenticate_outputs_accepted_by_server(server: Any) -> None:
    p = server.pusher()
    client = connect_raw(server)
    auth = p.authenticate("private-orders", client.socket_id)
    client.subscribe("private-orders", auth["auth"])
    # custom data on a private channel is part of the signature (Soketi issue #177)
    auth = p.authenticate("private-custom", client.socket_id, {"user_id": 5})
    client.subscribe("private-custom", auth["auth"], auth["channel_data"])
    # presence with an integer user_id and the SDK's spaced JSON
    auth = p.authenticate("presence-room", client.socket_id, {"user_id": 10, "user_info": {"name": "Mr. Channels"}})
    assert auth["channel_data"] == '{"user_id": 10, "user_info": {"name": "Mr. Channels"}}'
    frame = client.subscribe("presence-room", auth["auth"], auth["channel_data"])
    presence = data_of(frame)["presence"]
    assert presence["count"] == 1
    assert presence["ids"] == ["10"]
    assert presence["hash"] == {"10": {"name": "Mr. Channels"}}
    # a signature for another socket is refused
    other = connect_raw(server)
    stolen = p.authenticate("private-orders", other.socket_id)
    client.subscribe("private-stolen", stolen["auth"], expect=False)
    error = client.expect("pusher:error")
    assert "Invalid signature" in data_of(error)["message"]


def signed_in(server: Any, user_id: str) -> RawClient:
    client = connect_raw(server)
    client.send("pusher:signin", server.pusher().authenticate_user(client.socket_id, {"id": user_id}))
    client.expect("pusher:signin_success")
    return client


def test_terminate_user_connections_sdk_path(server: Any) -> None:
    tabs = [signed_in(server, "carol"), signed_in(server, "carol")]
    bystander = signed_in(server, "dave")
    anonymous = connect_raw(server)
    assert server.pusher().terminate_user_connections("carol") == {}  # POST /users/carol/terminate_connections
    for tab in tabs:
        code, frames = tab.closed()
        assert code == 4009
        assert any(f.get("event") == "pusher:error" and data_of(f).get("code") == 4009 for f in frames), frames
    bystander.ping()
    anonymous.ping()


def test_terminate_user_connections_prefixed_path(server: Any) -> None:
    victim = signed_in(server, "erin")
    response = signed(server, "POST", f"/apps/{server.app.id}/users/erin/terminate_connections", "{}")
    assert response.status_code == 200, response.text
    assert response.json() == {}
    assert victim.closed()[0] == 4009
    # the un-prefixed path, hand-signed
    victim = signed_in(server, "erin")
    response = signed(server, "POST", "/users/erin/terminate_connections", "{}")
    assert response.status_code == 200, response.text
    assert victim.closed()[0] == 4009


# -- encrypted channels ------------------------------------------------------------------------


def test_encrypted_channel_payload_passes_through(server: Any) -> None:
    master = base64.b64encode(os.urandom(32)).decode()
    p = server.pusher(encryption_master_key_base64=master)
    client = connect_raw(server)
    channel = "private-encrypted-vault"
    auth = p.authenticate(channel, client.socket_id)
    assert "shared_secret" in auth
    client.subscribe(channel, auth["auth"])
    p.trigger(channel, "secret", {"code": 1234})
    frame = client.expect("secret", channel)
    payload = json.loads(frame["data"])
    assert set(payload) == {"nonce", "ciphertext"}
    shared = hashlib.sha256(channel.encode() + base64.b64decode(master)).digest()
    plain = nacl.secret.SecretBox(shared).decrypt(base64.b64decode(payload["ciphertext"]),
                                                  base64.b64decode(payload["nonce"]))
    assert json.loads(plain) == {"code": 1234}
    # one request may not publish to an encrypted channel and another channel
    body = trigger_body([channel, "plain"], data=frame["data"])
    assert signed(server, "POST", f"/apps/{server.app.id}/events", body).status_code == 400


# -- errors --------------------------------------------------------------------------------------


def test_wrong_secret_and_wrong_app_id(server: Any) -> None:
    bad = pusher.Pusher(app_id=server.app.id, key=server.app.key, secret="not-the-secret",
                        host=server.host, port=server.port, ssl=False)
    with pytest.raises(PusherBadAuth, match="Invalid signature"):
        bad.trigger("x", "ev", {})
    with pytest.raises(PusherBadAuth):
        bad.channels_info()
    wrong_id = pusher.Pusher(app_id="999999", key=server.app.key, secret=server.app.secret,
                             host=server.host, port=server.port, ssl=False)
    with pytest.raises(PusherError):
        wrong_id.trigger("x", "ev", {})
    unknown_key = pusher.Pusher(app_id=server.app.id, key="no-such-key", secret=server.app.secret,
                                host=server.host, port=server.port, ssl=False)
    with pytest.raises(PusherBadAuth, match="Unknown auth_key"):
        unknown_key.trigger("x", "ev", {})


def test_event_data_limit_is_10kb(server: Any) -> None:
    (sub,) = subscribed(server, "big")
    path = f"/apps/{server.app.id}/events"
    at_limit = signed(server, "POST", path, trigger_body(["big"], "fits", "x" * 10240))
    assert at_limit.status_code == 200, at_limit.text
    assert len(sub.expect("fits")["data"]) == 10240
    over = signed(server, "POST", path, trigger_body(["big"], "too-big", "x" * 10241))
    assert over.status_code == 413, (over.status_code, over.text)
    batch = json.dumps({"batch": [{"channel": "big", "name": "too-big", "data": "y" * 20000}]})
    over = signed(server, "POST", f"/apps/{server.app.id}/batch_events", batch)
    assert over.status_code == 413, (over.status_code, over.text)
    sub.nothing(0.3)


def test_over_100_channels_is_400(server: Any) -> None:
    path = f"/apps/{server.app.id}/events"
    ok = signed(server, "POST", path, trigger_body([f"c{i}" for i in range(100)]))
    assert ok.status_code == 200, ok.text
    too_many = signed(server, "POST", path, trigger_body([f"c{i}" for i in range(101)]))
    assert too_many.status_code == 400, (too_many.status_code, too_many.text)


@pytest.mark.parametrize("skew", [-700, 700])
def test_timestamp_outside_600s_is_401(server: Any, skew: int) -> None:
    response = signed(server, "POST", f"/apps/{server.app.id}/events", trigger_body(["t"]),
                      timestamp=time.time() + skew)
    assert response.status_code == 401
    assert "Timestamp expired" in response.text
    assert signed(server, "POST", f"/apps/{server.app.id}/events", trigger_body(["t"]),
                  timestamp=time.time() - 500).status_code == 200


def test_get_signing_variants(server: Any) -> None:
    path = f"/apps/{server.app.id}/channels"
    with_md5 = signed(server, "GET", path)  # body_md5 of the empty body, as pusher-http-python sends it
    assert with_md5.status_code == 200, with_md5.text
    assert with_md5.json() == {"channels": {}}
    assert signed(server, "GET", path, body_md5=False).status_code == 200
    # a body_md5 that does not match the body is refused
    response = signed(server, "POST", f"/apps/{server.app.id}/events", trigger_body(["t"]),
                      params={"body_md5": "0" * 32}, body_md5=False)
    assert response.status_code == 401


def test_unknown_paths_are_404(server: Any) -> None:
    assert signed(server, "GET", f"/apps/{server.app.id}/nothing-here").status_code == 404
    assert requests.get(f"{server.http_url}/no/such/path", timeout=5).status_code == 404
    assert signed(server, "GET", f"/apps/{server.app.id}/channels/a/b/c").status_code == 404


def test_backend_rate_limit_gives_429(server_factory: Any) -> None:
    app = {"id": "515151", "key": "rl-key", "secret": "rl-secret", "max_backend_events_per_second": 2}
    server = server_factory([app])
    statuses = [signed(server, "POST", f"/apps/{app['id']}/events", trigger_body(["r"])).status_code
                for _ in range(8)]
    assert statuses[:2] == [200, 200], statuses
    assert 429 in statuses, statuses
    with pytest.raises(PusherBadStatus, match="429"):
        for _ in range(5):
            server.pusher().trigger("r", "ev", {})
    # reads are not publishes: still answered
    assert server.pusher().channels_info() == {"channels": {}}
    time.sleep(1.1)  # the bucket refills at 2 per second
    assert server.pusher().trigger("r", "ev", {}) == {}


@pytest.mark.parametrize(("body", "why"), [
    ("{not json", "invalid JSON"),
    (trigger_body(["ok"], name="e" * 201), "event name over 200 characters"),
    (trigger_body(["bad channel!"]), "invalid channel name"),
    (trigger_body([]), "no channel"),
    (json.dumps({"name": "ev", "channels": ["ok"], "data": {"not": "a string"}}), "data not a string"),
    (json.dumps({"channels": ["ok"], "data": "{}"}), "no name"),
])
def test_invalid_trigger_bodies_are_400(server: Any, body: str, why: str) -> None:
    response = signed(server, "POST", f"/apps/{server.app.id}/events", body)
    assert response.status_code == 400, (why, response.status_code, response.text)


def test_batch_limit_and_info(server: Any) -> None:
    path = f"/apps/{server.app.id}/batch_events"
    items = [{"channel": "b", "name": "ev", "data": "{}"}] * 11
    response = signed(server, "POST", path, json.dumps({"batch": items}))
    assert response.status_code == 400, response.text  # at most 10 events per batch
    subscribed(server, "counted", 2)
    response = signed(server, "POST", path, json.dumps({"batch": [
        {"channel": "counted", "name": "ev", "data": "{}", "info": "subscription_count"},
        {"channel": "b", "name": "ev", "data": "{}"}]}))
    assert response.status_code == 200, response.text
    assert response.json() == {"batch": [{"subscription_count": 2}, {}]}
    response = signed(server, "POST", f"/apps/{server.app.id}/events",
                      trigger_body(["counted", "empty"], info="subscription_count"))
    assert response.json() == {"channels": {"counted": {"subscription_count": 2}, "empty": {"subscription_count": 0}}}


def test_percent_encoded_query_is_accepted(server: Any) -> None:
    """Clients that URL-encode the query (aiohttp's params=) sign the decoded values (pusher-protocol.md §2.3)."""
    presence_member(server, "presence-enc", "u1")
    query = {"auth_key": server.app.key, "auth_timestamp": str(int(time.time())), "auth_version": "1.0",
             "info": "user_count", "filter_by_prefix": "presence-"}
    ordered = "&".join(f"{k}={v}" for k, v in sorted(query.items()))
    path = f"/apps/{server.app.id}/channels"
    signature = hmac_hex(server.app.secret, f"GET\n{path}\n{ordered}")
    encoded = ordered.replace("presence-", "presence%2D").replace("user_count", "user%5Fcount")
    response = requests.get(f"{server.http_url}{path}?{encoded}&auth_signature={signature}", timeout=5)
    assert response.status_code == 200, response.text
    assert response.json() == {"channels": {"presence-enc": {"user_count": 1}}}


def test_terminate_unknown_user_is_empty_success(server: Any) -> None:
    assert server.pusher().terminate_user_connections("nobody") == {}
