"""The webhook view: real HMAC-SHA256 signatures over the exact body, refusals, and the signals it sends.

Each accepted body is also checked with pusher-http-python's ``validate_webhook``, so the view accepts what
the official SDK accepts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pusher
import pytest
from django.dispatch import Signal
from django.test import Client
from django_test_support import TEST_VASK

from vask.contrib.django import signals
from vask.contrib.django.views import WebhookView

KEY, SECRET = TEST_VASK["KEY"], TEST_VASK["SECRET"]


def now_ms() -> int:
    return int(time.time() * 1000)


def signed(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(body: bytes, key: str | None = KEY, signature: str | None = None) -> Any:
    headers = {}
    if key is not None:
        headers["HTTP_X_PUSHER_KEY"] = key
    headers["HTTP_X_PUSHER_SIGNATURE"] = signed(body) if signature is None else signature
    # CSRF enforced like a browser: the webhook has no token and must not need one
    return Client(enforce_csrf_checks=True).post("/pusher/webhook", body, content_type="application/json",
                                                 **headers)


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []
    connected: list[tuple[Signal, Any]] = []
    for signal_name, signal in [*signals.BY_NAME.items(), ("webhook_received", signals.webhook_received)]:
        def receiver(sender: Any, _signal_name: str = signal_name, **kwargs: Any) -> None:
            kwargs.pop("signal")
            calls.append((_signal_name, {"sender": sender, **kwargs}))
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
    yield calls
    for signal, receiver in connected:
        signal.disconnect(receiver)


def test_events_become_signals(received: list[tuple[str, dict[str, Any]]]) -> None:
    events = [
        {"name": "channel_occupied", "channel": "feed"},
        {"name": "member_added", "channel": "presence-doc.1", "user_id": "7"},
        {"name": "client_event", "channel": "presence-doc.1", "event": "client-typing", "data": "{\"on\":true}",
         "socket_id": "1.2", "user_id": "7"},
        {"name": "member_removed", "channel": "presence-doc.1", "user_id": "7"},
        {"name": "channel_vacated", "channel": "feed"},
        {"name": "subscription_count", "channel": "feed", "subscription_count": 3},
        {"name": "some_future_event", "channel": "feed"},
    ]
    time_ms = now_ms()
    body = json.dumps({"time_ms": time_ms, "events": events}).encode()
    assert pusher.Pusher(app_id="123456", key=KEY, secret=SECRET).validate_webhook(KEY, signed(body), body)

    response = post(body)
    assert response.status_code == 200, response.content
    assert response.json() == {"ok": True, "events": 7}

    specific = [(name, kw) for name, kw in received if name != "webhook_received"]
    generic = [kw for name, kw in received if name == "webhook_received"]
    base = {"sender": WebhookView, "time_ms": time_ms}
    assert specific == [
        ("channel_occupied", {**base, "payload": events[0], "channel": "feed"}),
        ("member_added", {**base, "payload": events[1], "channel": "presence-doc.1", "user_id": "7"}),
        ("client_event", {**base, "payload": events[2], "channel": "presence-doc.1", "event": "client-typing",
                          "data": "{\"on\":true}", "socket_id": "1.2", "user_id": "7"}),
        ("member_removed", {**base, "payload": events[3], "channel": "presence-doc.1", "user_id": "7"}),
        ("channel_vacated", {**base, "payload": events[4], "channel": "feed"}),
        ("subscription_count", {**base, "payload": events[5], "channel": "feed", "subscription_count": 3}),
    ]
    assert [(kw["name"], kw["payload"]) for kw in generic] == [(e["name"], e) for e in events]


def test_client_event_on_a_private_channel_has_no_user_id(received: list[tuple[str, dict[str, Any]]]) -> None:
    event = {"name": "client_event", "channel": "private-x", "event": "client-a", "data": "d", "socket_id": "1.2"}
    assert post(json.dumps({"time_ms": now_ms(), "events": [event]}).encode()).status_code == 200
    assert received[0][1]["user_id"] is None


@pytest.mark.parametrize(("mutate", "status", "reason"), [
    (lambda body: (body, None, signed(body)), 403, "missing X-Pusher-Key"),
    (lambda body: (body, KEY, ""), 403, "missing X-Pusher-Key or X-Pusher-Signature"),
    (lambda body: (body, "other-key", signed(body)), 403, "not this app's key"),
    (lambda body: (body, KEY, signed(body, "wrong-secret")), 403, "does not match the body"),
    # the signature covers the exact bytes: re-serialising (here: adding a space) breaks it
    (lambda body: (body.replace(b":", b": ", 1), KEY, signed(body)), 403, "does not match the body"),
])
def test_bad_signatures_are_refused(received: list[Any], mutate: Any, status: int, reason: str) -> None:
    body = json.dumps({"time_ms": now_ms(), "events": [{"name": "channel_occupied", "channel": "a"}]},
                      separators=(",", ":")).encode()
    sent, key, signature = mutate(body)
    response = post(sent, key=key, signature=signature)
    assert response.status_code == status
    assert reason in response.json()["reason"]
    assert received == []


@pytest.mark.parametrize(("payload", "status", "reason"), [
    (b"not json", 400, "not JSON"),
    (b"[1]", 400, "not a JSON object"),
    ({"events": []}, 400, "time_ms must be an integer"),
    ({"time_ms": "1700000000000", "events": []}, 400, "time_ms must be an integer"),
    ({"time_ms": "now", "events": [{"name": "x"}]}, 400, "time_ms"),
    ({"time_ms": 0, "events": []}, 403, "more than 300 s away"),
    ({"time_ms": "OLD", "events": []}, 403, "more than 300 s away"),
    ({"time_ms": "NOW", "events": "channel_occupied"}, 400, "events must be a list"),
    ({"time_ms": "NOW", "events": [{"channel": "a"}]}, 400, "events must be a list of objects with a name"),
])
def test_malformed_or_stale_bodies(received: list[Any], payload: Any, status: int, reason: str) -> None:
    if isinstance(payload, dict):
        if payload.get("time_ms") == "NOW":
            payload["time_ms"] = now_ms()
        elif payload.get("time_ms") == "OLD":
            payload["time_ms"] = now_ms() - 301_000  # just past pusher-http-python's 5 minutes
        payload = json.dumps(payload).encode()
    response = post(payload)
    assert response.status_code == status, response.content
    assert reason in response.json()["reason"]
    assert received == []


def test_max_age_is_a_setting(settings: Any, received: list[Any]) -> None:
    settings.VASK = {**TEST_VASK, "WEBHOOK_MAX_AGE": "10"}
    body = json.dumps({"time_ms": now_ms() - 11_000, "events": []}).encode()
    assert post(body).json()["reason"] == "time_ms is more than 10 s away from now"


def test_a_failing_receiver_makes_the_sender_retry() -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("database is down")

    signals.channel_occupied.connect(broken, weak=False)
    try:
        body = json.dumps({"time_ms": now_ms(), "events": [{"name": "channel_occupied", "channel": "a"}]}).encode()
        client = Client(raise_request_exception=False)
        response = client.post("/pusher/webhook", body, content_type="application/json",
                               HTTP_X_PUSHER_KEY=KEY, HTTP_X_PUSHER_SIGNATURE=signed(body))
        assert response.status_code == 500  # non-2xx: Vask (like Pusher) delivers it again later
    finally:
        signals.channel_occupied.disconnect(broken)
