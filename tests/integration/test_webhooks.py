"""Webhooks from the real server to a real HTTP receiver, every request checked with pusher-http-python's
``validate_webhook`` and pusher-http-node's Content-Type rule: payloads of each event type, the delay and its
cancellation, filters, and shutdown flushing. Retries, timeouts, batching and refusals:
test_webhooks_delivery.py."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from webhook_helpers import (
    APP,
    FAST_ENV,
    Client,
    Receiver,
    add_webhook,
    names,
    verify,
    verify_all,
)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def test_every_event_type_has_pusher_payloads(server_factory: Any, receiver: Receiver) -> None:
    server = server_factory([APP], env=FAST_ENV)
    add_webhook(server, receiver.url())
    a, b = Client(server), Client(server)

    a.subscribe("my-channel")  # channel_occupied, subscription_count 1
    receiver.wait_events(lambda e: {"name": "subscription_count", "channel": "my-channel",
                                    "subscription_count": 1} in e)
    b.subscribe("my-channel")  # subscription_count 2
    a.subscribe("presence-room", "u1")  # channel_occupied, member_added u1
    b.subscribe("presence-room", "u2")  # member_added u2
    a.send("client-typing", {"text": "hi"}, "presence-room")  # client_event with user_id
    a.subscribe("private-chat")
    b.subscribe("private-chat")
    b.send("client-note", "plain text", "private-chat")  # client_event without user_id
    a.subscribe("cache-prices")  # empty cache channel: cache_miss ...
    b.subscribe("cache-prices")  # ... sent once for both subscribers
    events = receiver.wait_events(lambda e: sum(x["name"] == "client_event" for x in e) == 2
                                  and "cache_miss" in names(e))
    assert events.count({"name": "channel_occupied", "channel": "my-channel"}) == 1
    assert {"channel": "my-channel", "name": "subscription_count", "subscription_count": 2} in events
    assert {"name": "channel_occupied", "channel": "presence-room"} in events
    assert {"name": "member_added", "channel": "presence-room", "user_id": "u1"} in events
    assert {"name": "member_added", "channel": "presence-room", "user_id": "u2"} in events
    assert {"name": "client_event", "channel": "presence-room", "event": "client-typing",
            "data": '{"text":"hi"}', "socket_id": a.socket_id, "user_id": "u1"} in events
    assert {"name": "client_event", "channel": "private-chat", "event": "client-note", "data": "plain text",
            "socket_id": b.socket_id} in events
    assert not any(e["name"] == "subscription_count" and e["channel"].startswith("presence-") for e in events)

    b.unsubscribe("presence-room")  # member_removed u2, after the delay
    receiver.wait_events(lambda e: {"name": "member_removed", "channel": "presence-room", "user_id": "u2"} in e)
    a.close()
    b.close()
    events = receiver.wait_events(lambda e: names(e).count("channel_vacated") == 4)
    for channel in ("my-channel", "presence-room", "private-chat", "cache-prices"):
        assert events.count({"name": "channel_vacated", "channel": channel}) == 1
    assert {"name": "member_removed", "channel": "presence-room", "user_id": "u1"} in events
    # Presence: member_removed comes before the channel's vacate, as it happened.
    room = [e for e in events if e["channel"] == "presence-room"]
    assert names(room)[-2:] == ["member_removed", "channel_vacated"]
    time.sleep(0.5)
    assert names(receiver.events()).count("cache_miss") == 1  # de-duplicated
    verify_all(server.app, receiver)
    ids = [r.headers["x-vask-delivery"] for r in receiver.snapshot()]
    assert len(ids) == len(set(ids))  # no request was sent twice


def test_no_subscription_count_webhook_unless_enabled(server_factory: Any, receiver: Receiver) -> None:
    server = server_factory([{**APP, "subscription_count_events": False}], env=FAST_ENV)
    add_webhook(server, receiver.url())
    client = Client(server)
    client.subscribe("my-channel")
    receiver.wait_events(lambda e: "channel_occupied" in names(e))
    client.close()
    events = receiver.wait_events(lambda e: "channel_vacated" in names(e))
    assert names(events) == ["channel_occupied", "channel_vacated"]
    verify_all(server.app, receiver)


def test_rejoin_within_the_delay_sends_no_vacate_or_removal(server_factory: Any, receiver: Receiver) -> None:
    server = server_factory([APP], env={**FAST_ENV, "VASK_WEBHOOK_VACATE_DELAY": "1.0"})
    add_webhook(server, receiver.url())
    first = Client(server)
    first.subscribe("presence-lobby", "u1")
    receiver.wait_events(lambda e: "member_added" in names(e))
    first.close()  # a page reload: the same user comes back on a new connection
    second = Client(server)
    second.subscribe("presence-lobby", "u1")
    time.sleep(1.5)
    assert names(receiver.events()) == ["channel_occupied", "member_added"]

    second.close()  # gone for longer than the delay: exactly one of each
    events = receiver.wait_events(lambda e: "channel_vacated" in names(e), timeout=5)
    time.sleep(0.3)
    assert names(receiver.events()) == ["channel_occupied", "member_added", "member_removed", "channel_vacated"]
    assert events[2] == {"name": "member_removed", "channel": "presence-lobby", "user_id": "u1"}
    verify_all(server.app, receiver)


def test_filters_by_event_type_and_channel_name(server_factory: Any, receiver: Receiver) -> None:
    server = server_factory([{**APP, "subscription_count_events": False}], env=FAST_ENV)
    add_webhook(server, receiver.url("/occupied-public"), "--event", "channel_occupied", "--prefix", "public-")
    add_webhook(server, receiver.url("/rooms"), "--suffix", "-room", "--header", "Authorization: Bearer t0k")
    client = Client(server)
    for channel in ("public-news", "other-room", "public-room", "elsewhere"):
        client.subscribe(channel)
    receiver.wait_events(lambda e: len(e) == 4)
    client.close()
    receiver.wait_events(lambda e: len(e) == 6)
    time.sleep(0.5)  # anything else would have come by now
    # order holds per channel only: two channels' webhooks are separate requests that may overtake each other
    assert sorted(receiver.events("/occupied-public"), key=lambda e: e["channel"]) == [
        {"name": "channel_occupied", "channel": "public-news"}, {"name": "channel_occupied", "channel": "public-room"}]
    rooms = receiver.events("/rooms")
    assert sorted((e["name"], e["channel"]) for e in rooms) == [
        ("channel_occupied", "other-room"), ("channel_occupied", "public-room"),
        ("channel_vacated", "other-room"), ("channel_vacated", "public-room")]
    for request in receiver.snapshot():
        verify(server.app, request)
        if request.path == "/rooms":
            assert request.headers["authorization"] == "Bearer t0k"
        else:
            assert "authorization" not in request.headers


def test_shutdown_flushes_delayed_and_batched_webhooks(server_factory: Any, receiver: Receiver) -> None:
    # A delay and a batch window longer than the test: the events can only arrive through the shutdown flush.
    server = server_factory([APP], env={**FAST_ENV, "VASK_WEBHOOK_VACATE_DELAY": "30"})
    add_webhook(server, receiver.url(), "--batch", "--batch-window", "10")
    client = Client(server)
    client.subscribe("presence-x", "u9")
    started = time.monotonic()
    assert server.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < 5
    client.close()
    requests = receiver.snapshot()
    assert len(requests) == 1  # one batch, sent without waiting for its window
    assert names(verify(server.app, requests[0])["events"]) == [
        "channel_occupied", "member_added", "member_removed", "channel_vacated"]


def test_target_changes_apply_to_connections_already_open(server_factory: Any, receiver: Receiver) -> None:
    server = server_factory([{**APP, "subscription_count_events": False}], env=FAST_ENV)
    client = Client(server)  # opened before the app had any webhook
    client.subscribe("before")
    add_webhook(server, receiver.url())
    client.subscribe("after-add")
    receiver.wait_events(lambda e: len(e) == 1)
    server.cli("apps", "webhooks", "remove", server.app.id, "1")
    time.sleep(0.3)
    client.subscribe("after-remove")
    client.unsubscribe("after-add")
    time.sleep(0.6)  # past the vacate delay
    assert receiver.events() == [{"name": "channel_occupied", "channel": "after-add"}]
    verify_all(server.app, receiver)
    client.close()
