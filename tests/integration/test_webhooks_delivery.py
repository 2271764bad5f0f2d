"""Webhook delivery against a real receiver: retries keep one delivery id, timeouts are retried, batches,
failures that are logged rather than lost silently, and URLs refused for pointing at loopback."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from webhook_helpers import APP, FAST_ENV, Client, Receiver, add_webhook, verify

QUIET_APP = {**APP, "subscription_count_events": False}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    yield made
    made.close()


def log_has(server: Any, text: str, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in "".join(server.output):
            return True
        time.sleep(0.05)
    return False


def test_retried_with_one_delivery_id_until_2xx_then_delivered_once(server_factory: Any) -> None:
    receiver = Receiver([(500, 0.0), (500, 0.0), (500, 0.0)])  # then 200
    try:
        server = server_factory([QUIET_APP], env=FAST_ENV)
        add_webhook(server, receiver.url())
        client = Client(server)
        client.subscribe("orders")
        requests = receiver.wait(lambda r: len(r) == 4)
        time.sleep(0.6)  # several backoff periods: a fifth request would have come
        assert len(receiver.snapshot()) == 4
        assert [r.status for r in requests] == [500, 500, 500, 200]
        assert len({r.headers["x-vask-delivery"] for r in requests}) == 1
        assert [r.headers["x-vask-attempt"] for r in requests] == ["1", "2", "3", "4"]
        bodies = [verify(server.app, r) for r in requests]  # re-signed with a fresh time_ms each attempt
        assert [b["time_ms"] for b in bodies] == sorted(b["time_ms"] for b in bodies)
        assert receiver.events() == [{"name": "channel_occupied", "channel": "orders"}]
        assert log_has(server, "failed (attempt 3: HTTP 500)")
        client.close()
    finally:
        receiver.close()


def test_a_request_that_times_out_is_retried(server_factory: Any) -> None:
    receiver = Receiver([(200, 1.5)])  # answers too late the first time
    try:
        server = server_factory([QUIET_APP], env={**FAST_ENV, "VASK_WEBHOOK_TIMEOUT": "0.4"})
        add_webhook(server, receiver.url())
        client = Client(server)
        client.subscribe("slow")
        requests = receiver.wait(lambda r: len(r) == 2)
        assert requests[0].headers["x-vask-delivery"] == requests[1].headers["x-vask-delivery"]
        assert [json.loads(r.body)["events"] for r in requests] == [[{"name": "channel_occupied",
                                                                       "channel": "slow"}]] * 2
        for request in requests:
            verify(server.app, request)
        assert log_has(server, "no answer within 0.4 s")
        client.close()
    finally:
        receiver.close()


def test_batches_group_close_events_up_to_the_limit(server_factory: Any, receiver: Receiver) -> None:
    server = server_factory([QUIET_APP], env={**FAST_ENV, "VASK_WEBHOOK_BATCH_MAX": "4"})
    add_webhook(server, receiver.url(), "--batch", "--batch-window", "0.3")
    client = Client(server)
    channels = [f"batch-{i}" for i in range(6)]
    for channel in channels:
        client.subscribe(channel, wait=False)
    for _ in channels:
        client.recv("pusher_internal:subscription_succeeded")
    requests = receiver.wait(lambda r: sum(len(json.loads(x.body)["events"]) for x in r) == 6)
    time.sleep(0.4)
    assert [len(verify(server.app, r)["events"]) for r in receiver.snapshot()] == [4, 2]
    assert [e["channel"] for e in receiver.events()] == channels  # in the order they happened
    assert len({r.headers["x-vask-delivery"] for r in requests}) == 2
    client.close()


def test_failures_are_logged_when_retries_run_out(server_factory: Any) -> None:
    receiver = Receiver([(503, 0.0)] * 1000)
    try:
        server = server_factory([QUIET_APP], env={**FAST_ENV, "VASK_WEBHOOK_RETRY_FOR": "0.5"})
        add_webhook(server, receiver.url())
        client = Client(server)
        client.subscribe("doomed")
        assert log_has(server, "given up after")
        assert "channel_occupied doomed" in "".join(server.output)
        attempts = len(receiver.snapshot())
        assert attempts >= 3
        time.sleep(0.4)
        assert len(receiver.snapshot()) == attempts  # no more tries once given up
        client.close()
    finally:
        receiver.close()


def test_undelivered_webhooks_are_reported_at_shutdown(server_factory: Any) -> None:
    receiver = Receiver([(500, 0.0)] * 1000)
    try:
        env = {**FAST_ENV, "VASK_WEBHOOK_SHUTDOWN_GRACE": "0.5", "VASK_WEBHOOK_RETRY_BASE": "5"}
        server = server_factory([QUIET_APP], env=env)
        add_webhook(server, receiver.url())
        client = Client(server)
        client.subscribe("stuck")
        receiver.wait(lambda r: len(r) == 1)  # the first attempt failed; the retry waits 2.5 s or more
        assert server.stop(signal.SIGTERM) == 0
        # The shutdown cut the pause short and tried again within its grace period, then said what was lost.
        assert len(receiver.snapshot()) >= 2
        assert "webhook events were not delivered" in "".join(server.output)
        client.close()
    finally:
        receiver.close()


def test_loopback_urls_are_refused_unless_allowed(server_factory: Any, receiver: Receiver) -> None:
    env = {k: v for k, v in FAST_ENV.items() if k != "VASK_WEBHOOK_ALLOW_PRIVATE"}
    server = server_factory([QUIET_APP], env=env)
    add_webhook(server, receiver.url("/literal"))
    add_webhook(server, receiver.url("/by-name", host="localhost"))  # refused when resolved, not by its name
    client = Client(server)
    client.subscribe("private-stuff")
    client.subscribe("another")
    literal = f"to http://127.0.0.1:{receiver.port}/literal refused"
    by_name = f"to http://localhost:{receiver.port}/by-name refused"
    assert log_has(server, literal) and log_has(server, by_name)
    assert "localhost is loopback" in "".join(server.output)
    client.close()
    time.sleep(0.8)  # the vacates too (after the 0.3 s delay) are refused
    assert receiver.snapshot() == []
    output = "".join(server.output)
    assert output.count(literal) == 1  # repeated refusals of one target are summarised, not logged each time
