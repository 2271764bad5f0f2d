"""The channel-auth and user-auth views through Django's test client, CSRF checks enforced.

Signatures are recomputed here with hmac from the documented string formats (``socket_id:channel[:data]`` and
``socket_id::user::user_data``), not with the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django_test_support import TEST_VASK, alice_fixture, bob_fixture  # noqa: F401  (fixtures)

from vask.contrib.django import ChannelRegistry, authorizers, same_user

pytestmark = pytest.mark.django_db

SOCKET = "1234.5678"
KEY, SECRET = TEST_VASK["KEY"], TEST_VASK["SECRET"]


def expected_auth(message: str) -> str:
    return f"{KEY}:{hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()}"


@pytest.fixture(autouse=True)
def rules() -> Iterator[ChannelRegistry]:
    """The default registry with the demo's two rules, restored after each test."""
    saved = authorizers.patterns
    authorizers.register("private-orders.{user_id}", same_user("user_id"))

    @authorizers.channel("presence-doc.{doc_id}")
    def doc_viewers(user: Any, doc_id: str) -> bool:
        return doc_id != "999"  # 999: a document nobody may open

    yield authorizers
    for pattern in authorizers.patterns:
        if pattern not in saved:
            authorizers.unregister(pattern)


def csrf_client(user: Any | None) -> tuple[Client, str]:
    """A client that enforces CSRF like a browser, logged in as ``user``, and its CSRF token."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    page = client.get("/page")  # the page that renders {% vask_config %} sets the CSRF cookie
    assert page.status_code == 200
    cookie = client.cookies.get("csrftoken")
    return client, cookie.value if cookie is not None else ""


def auth(client: Client, token: str | None, **form: str) -> Any:
    headers = {"HTTP_X_CSRFTOKEN": token} if token else {}
    return client.post("/pusher/auth", form, **headers)


def test_post_without_csrf_token_is_refused_in_json(alice: Any) -> None:
    client, _ = csrf_client(alice)
    response = auth(client, None, socket_id=SOCKET, channel_name=f"private-orders.{alice.pk}")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "csrf_failed" and "CSRF" in body["reason"]
    # a wrong token is refused too
    response = auth(client, "x" * 64, socket_id=SOCKET, channel_name=f"private-orders.{alice.pk}")
    assert response.status_code == 403 and response.json()["error"] == "csrf_failed"
    # and the signin view checks it as well
    response = client.post("/pusher/user-auth", {"socket_id": SOCKET})
    assert response.status_code == 403 and response.json()["error"] == "csrf_failed"


def test_csrf_is_checked_even_without_the_csrf_middleware(alice: Any, settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "csrf" not in m.lower()]
    client, token = csrf_client(alice)
    assert token == ""  # nothing set the cookie: the page's middleware is gone
    response = auth(client, None, socket_id=SOCKET, channel_name=f"private-orders.{alice.pk}")
    assert response.status_code == 403 and response.json()["error"] == "csrf_failed"
    assert "CSRF cookie not set" in response.json()["reason"]


def test_missing_authentication_middleware_is_reported(alice: Any, settings: Any) -> None:
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "auth" not in m]
    client, token = csrf_client(None)
    response = auth(client, token, socket_id=SOCKET, channel_name="private-orders.1")
    assert response.status_code == 500
    assert response.json()["reason"] == "no user on the request: AuthenticationMiddleware is not installed"


def test_private_channel_of_own_user_is_signed(alice: Any) -> None:
    client, token = csrf_client(alice)
    channel = f"private-orders.{alice.pk}"
    response = auth(client, token, socket_id=SOCKET, channel_name=channel)
    assert response.status_code == 200, response.content
    assert response.json() == {"auth": expected_auth(f"{SOCKET}:{channel}")}


def test_private_channel_of_another_user_is_refused(alice: Any, bob: Any) -> None:
    client, token = csrf_client(bob)
    channel = f"private-orders.{alice.pk}"
    response = auth(client, token, socket_id=SOCKET, channel_name=channel)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden",
                               "reason": f"not allowed on {channel} (rule private-orders.{{user_id}})"}


def test_anonymous_user_is_refused(alice: Any) -> None:
    client, token = csrf_client(None)
    response = auth(client, token, socket_id=SOCKET, channel_name=f"private-orders.{alice.pk}")
    assert response.status_code == 403
    assert response.json() == {"error": "unauthenticated", "reason": "login required"}
    response = client.post("/pusher/user-auth", {"socket_id": SOCKET}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 403 and response.json()["reason"] == "login required"


@pytest.mark.parametrize(("channel", "reason"), [
    ("orders", "orders is a public channel: subscribe without authorization"),
    ("private-invoices.1", "no authorization rule matches private-invoices.1"),
    ("presence-doc.999", "not allowed on presence-doc.999 (rule presence-doc.{doc_id})"),
    ("private-orders.1.extra", "no authorization rule matches private-orders.1.extra"),
])
def test_channels_without_a_matching_rule_are_refused(alice: Any, channel: str, reason: str) -> None:
    client, token = csrf_client(alice)
    response = auth(client, token, socket_id=SOCKET, channel_name=channel)
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "reason": reason}


@pytest.mark.parametrize("form", [
    {"channel_name": "private-orders.1"},
    {"socket_id": "12.34x", "channel_name": "private-orders.1"},
    {"socket_id": SOCKET},
    {"socket_id": SOCKET, "channel_name": "private-orders.<1>"},
    {"socket_id": SOCKET, "channel_name": "private-" + "x" * 200},
])
def test_malformed_requests_are_400(alice: Any, form: dict[str, str]) -> None:
    client, token = csrf_client(alice)
    response = auth(client, token, **form)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_get_is_not_allowed(alice: Any) -> None:
    client, _ = csrf_client(alice)
    for path in ("/pusher/auth", "/pusher/user-auth", "/pusher/webhook"):
        response = client.get(path)
        assert response.status_code == 405, path
        assert response["Allow"] == "POST"


def test_presence_payload_is_user_id_and_name(alice: Any) -> None:
    client, token = csrf_client(alice)
    response = auth(client, token, socket_id=SOCKET, channel_name="presence-doc.7")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"auth", "channel_data"}
    assert json.loads(body["channel_data"]) == {"user_id": str(alice.pk), "user_info": {"name": "Alice Liddell"}}
    # the signature covers the channel_data string exactly as sent
    assert body["auth"] == expected_auth(f"{SOCKET}:presence-doc.7:{body['channel_data']}")


def test_presence_name_falls_back_to_username(bob: Any) -> None:
    client, token = csrf_client(bob)
    body = auth(client, token, socket_id=SOCKET, channel_name="presence-doc.7").json()
    assert json.loads(body["channel_data"]) == {"user_id": str(bob.pk), "user_info": {"name": "bob"}}


def initials_info(user: Any, channel: str | None) -> dict[str, Any]:
    return {"initials": user.username[:2].upper(), "channel": channel}


def email_id(user: Any) -> str:
    return f"{user.username}@example.test"


def test_presence_payload_is_overridable_in_settings(alice: Any, settings: Any) -> None:
    settings.VASK = {**TEST_VASK, "USER_INFO": f"{__name__}.initials_info", "USER_ID": f"{__name__}.email_id"}
    client, token = csrf_client(alice)
    body = auth(client, token, socket_id=SOCKET, channel_name="presence-doc.7").json()
    assert json.loads(body["channel_data"]) == {
        "user_id": "alice@example.test", "user_info": {"initials": "AL", "channel": "presence-doc.7"}}


def test_presence_rule_may_return_the_member_info(alice: Any, rules: ChannelRegistry) -> None:
    rules.register("presence-room.{room}", lambda user, room: {"name": user.username, "room": room})
    client, token = csrf_client(alice)
    body = auth(client, token, socket_id=SOCKET, channel_name="presence-room.lobby").json()
    assert json.loads(body["channel_data"])["user_info"] == {"name": "alice", "room": "lobby"}


def test_private_channel_with_channel_name_in_json_body(alice: Any) -> None:
    client, token = csrf_client(alice)
    channel = f"private-orders.{alice.pk}"
    response = client.post("/pusher/auth", {"socket_id": SOCKET, "channel_name": channel},
                           content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    assert response.json() == {"auth": expected_auth(f"{SOCKET}:{channel}")}


def test_encrypted_channel_needs_the_master_key(alice: Any, rules: ChannelRegistry, settings: Any) -> None:
    rules.register("private-encrypted-inbox.{user_id}", same_user())
    client, token = csrf_client(alice)
    channel = f"private-encrypted-inbox.{alice.pk}"
    response = auth(client, token, socket_id=SOCKET, channel_name=channel)
    assert response.status_code == 500 and response.json()["error"] == "misconfigured"

    master_key = base64.b64encode(bytes(range(32))).decode()
    settings.VASK = {**TEST_VASK, "ENCRYPTION_MASTER_KEY_BASE64": master_key}
    body = auth(client, token, socket_id=SOCKET, channel_name=channel).json()
    assert body["auth"] == expected_auth(f"{SOCKET}:{channel}")
    # Pusher's per-channel key: SHA-256 of channel name + master key
    assert base64.b64decode(body["shared_secret"]) == hashlib.sha256(channel.encode() + bytes(range(32))).digest()


def test_signin_payload(alice: Any) -> None:
    client, token = csrf_client(alice)
    response = client.post("/pusher/user-auth", {"socket_id": SOCKET}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"auth", "user_data"}
    assert json.loads(body["user_data"]) == {"id": str(alice.pk), "user_info": {"name": "Alice Liddell"}}
    assert body["auth"] == expected_auth(f"{SOCKET}::user::{body['user_data']}")


def with_watchlist(user: Any) -> dict[str, Any]:
    return {"id": user.username, "watchlist": ["bob"]}


def test_signin_user_data_is_overridable(alice: Any, settings: Any) -> None:
    settings.VASK = {**TEST_VASK, "USER_DATA": f"{__name__}.with_watchlist"}
    client, token = csrf_client(alice)
    body = client.post("/pusher/user-auth", {"socket_id": SOCKET}, HTTP_X_CSRFTOKEN=token).json()
    assert json.loads(body["user_data"]) == {"id": "alice", "watchlist": ["bob"]}


def test_signin_needs_a_socket_id(alice: Any) -> None:
    client, token = csrf_client(alice)
    response = client.post("/pusher/user-auth", {}, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 400 and response.json()["reason"] == "socket_id is missing or malformed"


def test_views_use_the_registry_named_in_settings(alice: Any, settings: Any) -> None:
    settings.VASK = {**TEST_VASK, "AUTHORIZERS": f"{__name__}.ONLY_ROOMS"}
    client, token = csrf_client(alice)
    assert auth(client, token, socket_id=SOCKET, channel_name="private-room.1").status_code == 200
    # the default registry's rules do not apply any more
    response = auth(client, token, socket_id=SOCKET, channel_name=f"private-orders.{alice.pk}")
    assert response.status_code == 403


ONLY_ROOMS = ChannelRegistry()
ONLY_ROOMS.register("private-room.{room}", lambda user, room: True)
