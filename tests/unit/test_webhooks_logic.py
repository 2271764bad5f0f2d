"""Webhook logic without an event loop or network: payloads, filters, the delay, de-duplication, batching,
the retry schedule, and the service's hooks with an injected clock."""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import pusher
import pytest
from pydantic import ValidationError

from vask.apps.base import App, AppSettings, WebhookTarget
from vask.config import Settings
from vask.webhooks import events as ev
from vask.webhooks.batching import Lane, backoff, keep_retrying, lane_of
from vask.webhooks.debounce import Debouncer, Deduper
from vask.webhooks.sender import WebhookStats
from vask.webhooks.service import WebhookService


def names(released: list[tuple[Any, ev.Event]]) -> list[str]:
    return [f"{e['name']}:{e.get('user_id', '')}" for _, e in released]


# -- payloads and filters ------------------------------------------------------------------------------


def test_payloads_have_the_documented_fields_and_order() -> None:
    assert ev.channel_event(ev.OCCUPIED, "a") == {"name": "channel_occupied", "channel": "a"}
    assert list(ev.member_event(ev.MEMBER_ADDED, "presence-a", "u1")) == ["name", "channel", "user_id"]
    public = ev.client_event("private-a", "client-x", {"k": [1, 2]}, "1.2", None)
    assert public == {"name": "client_event", "channel": "private-a", "event": "client-x",
                      "data": '{"k":[1,2]}', "socket_id": "1.2"}  # object data is sent as JSON text
    presence = ev.client_event("presence-a", "client-x", "raw text", "1.2", "u1")
    assert presence["data"] == "raw text" and presence["user_id"] == "u1"
    assert ev.subscription_count("a", 3) == {"channel": "a", "name": "subscription_count", "subscription_count": 3}


def test_body_time_ms_is_an_int_and_the_signature_covers_the_exact_bytes() -> None:
    body = ev.body([ev.channel_event(ev.OCCUPIED, "a")], 1_700_000_000_123)
    assert json.loads(body) == {"time_ms": 1_700_000_000_123, "events": [{"name": "channel_occupied",
                                                                          "channel": "a"}]}
    client = pusher.Pusher(app_id="1", key="key", secret="secret")
    # validate_webhook checks the 5-minute window against now: use a current time_ms.
    fresh = ev.body([ev.channel_event(ev.OCCUPIED, "a")], int(time.time() * 1000))
    assert client.validate_webhook("key", ev.signature("secret", fresh), fresh.decode())["events"][0]["channel"] == "a"
    assert client.validate_webhook("key", ev.signature("other", fresh), fresh.decode()) is None


def test_target_filters() -> None:
    target = WebhookTarget(url="https://x.test/h", event_types=["member_added"], channel_prefix="presence-",
                           channel_suffix="-room")
    assert ev.accepts(target, "member_added", "presence-chat-room")
    assert not ev.accepts(target, "member_removed", "presence-chat-room")
    assert not ev.accepts(target, "member_added", "private-chat-room")
    assert not ev.accepts(target, "member_added", "presence-chat")
    assert ev.accepts(WebhookTarget(url="http://x.test/"), "cache_miss", "anything")
    # A target that wants only member_added still routes member_removed through the delay, so that a
    # cancelled removal also cancels the second member_added.
    assert ev.wanted([target], "member_removed", "presence-chat-room")
    assert not ev.wanted([target], "client_event", "presence-chat-room")


@pytest.mark.parametrize("fields", [
    {"url": "ftp://x.test/"}, {"url": "http:///path"}, {"url": "http://x.test:99999/"},
    {"url": "https://x.test/", "event_types": ["channel_closed"]},
    {"url": "https://x.test/", "headers": {"X-Pusher-Signature": "forged"}},
    {"url": "https://x.test/", "headers": {"X-Vask-Delivery": "1"}},
    {"url": "https://x.test/", "headers": {"X-Token": "a\r\nInjected: 1"}},
    {"url": "https://x.test/", "headers": {"Bad Name": "1"}},
    {"url": "https://x.test/", "batch_window": 0},
])
def test_invalid_targets_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WebhookTarget(**fields)


# -- the delay -----------------------------------------------------------------------------------------


def test_vacate_is_delayed_then_sent() -> None:
    d: Debouncer[str] = Debouncer(3.0, 100)
    assert d.push("c", ev.channel_event(ev.VACATED, "c"), "app", 10.0) == []
    assert d.next_due() == 13.0
    assert d.pop_due(12.9) == []
    assert names(d.pop_due(13.0)) == ["channel_vacated:"]
    assert d.size == 0 and d.channels == {} and d.next_due() is None


def test_reoccupation_within_the_delay_cancels_both() -> None:
    d: Debouncer[str] = Debouncer(3.0, 100)
    d.push("c", ev.channel_event(ev.VACATED, "c"), "app", 0.0)
    assert d.push("c", ev.channel_event(ev.OCCUPIED, "c"), "app", 2.0) == []
    assert d.cancelled == 1 and d.size == 0
    assert d.pop_due(100.0) == []


def test_rejoin_cancels_only_that_users_removal() -> None:
    d: Debouncer[str] = Debouncer(3.0, 100)
    p = "presence-c"
    d.push(p, ev.member_event(ev.MEMBER_REMOVED, p, "u1"), "app", 0.0)
    d.push(p, ev.member_event(ev.MEMBER_REMOVED, p, "u2"), "app", 0.5)
    assert d.push(p, ev.member_event(ev.MEMBER_ADDED, p, "u1"), "app", 1.0) == []
    assert names(d.pop_due(3.5)) == ["member_removed:u2"]


def test_events_behind_a_held_one_keep_their_order() -> None:
    d: Debouncer[str] = Debouncer(3.0, 100)
    p = "presence-c"
    d.push(p, ev.member_event(ev.MEMBER_REMOVED, p, "u1"), "app", 0.0)
    # Another user joins meanwhile: it waits behind the removal instead of overtaking it.
    assert d.push(p, ev.member_event(ev.MEMBER_ADDED, p, "u2"), "app", 1.0) == []
    assert d.pop_due(2.9) == []
    assert names(d.pop_due(3.0)) == ["member_removed:u1", "member_added:u2"]
    # Other channels are not held up.
    assert names(d.push("other", ev.channel_event(ev.OCCUPIED, "other"), "app", 1.0)) == ["channel_occupied:"]


def test_cancelling_the_head_releases_what_waited_behind_it() -> None:
    d: Debouncer[str] = Debouncer(3.0, 100)
    p = "presence-c"
    d.push(p, ev.member_event(ev.MEMBER_REMOVED, p, "u1"), "app", 0.0)
    d.push(p, ev.channel_event(ev.VACATED, p), "app", 0.0)
    d.push(p, ev.channel_event(ev.CACHE_MISS, p), "app", 1.0)  # waits behind
    assert d.push(p, ev.channel_event(ev.OCCUPIED, p), "app", 1.0) == []  # cancels the vacate
    assert names(d.push(p, ev.member_event(ev.MEMBER_ADDED, p, "u1"), "app", 1.1)) == ["cache_miss:"]
    assert d.size == 0 and d.pop_due(10.0) == []


def test_leave_rejoin_leave_sends_one_vacate() -> None:
    d: Debouncer[str] = Debouncer(3.0, 100)
    d.push("c", ev.channel_event(ev.VACATED, "c"), "app", 0.0)
    d.push("c", ev.channel_event(ev.OCCUPIED, "c"), "app", 1.0)
    d.push("c", ev.channel_event(ev.VACATED, "c"), "app", 2.0)
    assert d.pop_due(4.9) == []
    assert names(d.pop_due(5.0)) == ["channel_vacated:"]


def test_zero_delay_passes_through_and_drain_and_limit() -> None:
    assert names(Debouncer[str](0.0, 10).push("c", ev.channel_event(ev.VACATED, "c"), "a", 0.0)) == [
        "channel_vacated:"]
    d: Debouncer[str] = Debouncer(3.0, 2)
    d.push("a", ev.channel_event(ev.VACATED, "a"), "app", 0.0)
    d.push("b", ev.channel_event(ev.VACATED, "b"), "app", 0.0)
    assert d.push("c", ev.channel_event(ev.VACATED, "c"), "app", 0.0) == [] and d.overflow == 1
    assert sorted(e["channel"] for _, e in d.drain()) == ["a", "b"]
    assert d.size == 0 and d.next_due() is None


def test_deduper_window() -> None:
    dedupe = Deduper(1.0)
    assert dedupe.first(("app", "cache-a"), 0.0)
    assert not dedupe.first(("app", "cache-a"), 0.5)
    assert dedupe.first(("app", "cache-b"), 0.5)
    assert dedupe.first(("app", "cache-a"), 1.0)
    assert dedupe.suppressed == 1
    bounded = Deduper(10.0, max_keys=2)
    for key in "abc":
        bounded.first(key, 0.0)
    assert len(bounded.seen) == 2


# -- lanes, batches, retries ---------------------------------------------------------------------------


def test_lane_without_batching_sends_one_event_per_request() -> None:
    lane = Lane()
    assert lane.ready_at(False, 0.05, 100) is None
    lane.push({"name": "a"}, 1.0)
    lane.push({"name": "b"}, 1.01)
    assert lane.ready_at(False, 0.05, 100) == 1.0
    assert lane.take(False, 100) == ([{"name": "a"}], 1.0)


def test_lane_batches_within_the_window_and_up_to_the_limit() -> None:
    lane = Lane()
    for i in range(5):
        lane.push({"n": i}, 1.0 + i * 0.01)
    assert lane.ready_at(True, 0.05, 100) == pytest.approx(1.05)  # the window runs from the first event
    assert lane.ready_at(True, 0.05, 5) == 1.0  # full: at once
    taken, first = lane.take(True, 3)
    assert [e["n"] for e in taken] == [0, 1, 2] and first == 1.0
    assert len(lane) == 2


def test_lane_of_is_stable() -> None:
    assert lane_of("presence-room", 4) == lane_of("presence-room", 4)
    assert {lane_of(f"c{i}", 4) for i in range(50)} == {0, 1, 2, 3}


def test_backoff_grows_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    pauses = [backoff(n, 1.0, 60.0, rng) for n in range(1, 10)]
    for n, pause in enumerate(pauses, 1):
        full = min(60.0, 2.0 ** (n - 1))
        assert full / 2 <= pause <= full
    assert backoff(1000, 1.0, 60.0) <= 60.0


def test_retry_budget_counts_from_the_event() -> None:
    assert keep_retrying(first_event_at=0.0, now=200.0, pause=60.0, retry_for=300.0)
    assert not keep_retrying(first_event_at=0.0, now=250.0, pause=60.0, retry_for=300.0)


# -- the service's hooks, with a fake clock and no loop --------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.sent: list[ev.Event] = []
        self.stats = WebhookStats()

    def submit(self, app: App, event: ev.Event) -> None:
        self.sent.append(event)


def service(clock: list[float], **settings: Any) -> tuple[WebhookService, Recorder]:
    recorder = Recorder()
    svc = WebhookService(Settings(**settings), clock=lambda: clock[0], sender=recorder)  # type: ignore[arg-type]
    return svc, recorder


def app(**settings: Any) -> App:
    return App(id="1", key="k", secret="s", settings=AppSettings(
        webhooks=[WebhookTarget(url="https://hooks.test/")], **settings))


def test_service_delays_cancels_and_dedupes() -> None:
    clock = [0.0]
    svc, out = service(clock, webhook_vacate_delay=3.0, webhook_cache_miss_window=1.0)
    a = app()
    svc.cache_miss(a, "cache-x")
    svc.cache_miss(a, "cache-x")
    svc.channel_occupied(a, "cache-x")
    svc.channel_vacated(a, "cache-x")
    clock[0] = 1.0
    svc.channel_occupied(a, "cache-x")  # back within the delay: neither webhook
    svc.channel_vacated(a, "cache-x")
    clock[0] = 4.0
    svc._tick()
    assert [e["name"] for e in out.sent] == ["cache_miss", "channel_occupied", "channel_vacated"]
    assert svc.stats.cache_miss_deduplicated == 1 and svc.stats.pairs_cancelled == 1


def test_service_skips_apps_without_webhooks_and_counts_only_when_enabled() -> None:
    clock = [0.0]
    svc, out = service(clock)
    bare = App(id="2", key="k2", secret="s")
    svc.channel_occupied(bare, "a")
    svc.client_event(bare, "private-a", "client-x", {}, "1.1", None)
    svc.subscription_count(app(), "a", 2)  # the app has subscription_count_events off
    svc.subscription_count(app(subscription_count_events=True), "a", 2)
    assert out.sent == [{"channel": "a", "name": "subscription_count", "subscription_count": 2}]


class SlowApps:
    """An app cache that has nothing cached and re-reads records slowly."""

    def __init__(self, record: App | None) -> None:
        self.record = record
        self.cached = False
        self.reads = 0

    def cached_by_id(self, app_id: str) -> tuple[bool, App | None]:
        return self.cached, self.record if self.cached else None

    async def by_id(self, app_id: str) -> App | None:
        self.reads += 1
        await asyncio.sleep(0.05)
        self.cached = True
        return self.record


def test_hooks_use_the_current_app_record_and_keep_their_order() -> None:
    async def run(record: App | None) -> list[ev.Event]:
        recorder = Recorder()
        apps = SlowApps(record)
        svc = WebhookService(Settings(webhook_vacate_delay=0), sender=recorder, apps=apps)  # type: ignore[arg-type]
        svc.loop = asyncio.get_running_loop()
        stale = App(id="1", key="k", secret="s")  # what an old connection holds: no webhooks
        svc.channel_occupied(stale, "a")
        svc.client_event(stale, "private-a", "client-x", "d", "1.1", None)
        svc.channel_vacated(stale, "a")
        assert recorder.sent == []
        await asyncio.sleep(0.1)
        assert apps.reads == 1  # one re-read for all three
        svc.channel_occupied(stale, "b")  # now cached: at once
        return recorder.sent

    sent = asyncio.run(run(app()))
    assert [(e["name"], e["channel"]) for e in sent] == [
        ("channel_occupied", "a"), ("client_event", "private-a"), ("channel_vacated", "a"), ("channel_occupied", "b")]
    assert asyncio.run(run(None)) == []  # the app was deleted meanwhile


def test_a_full_delay_queue_drops_with_a_count_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    svc, out = service(clock, webhook_vacate_delay=3.0, webhook_queue_size=1)
    a = app()
    with caplog.at_level("WARNING", logger="vask.webhooks"):
        for name in ("x", "y", "z"):
            svc.channel_vacated(a, name)
    assert svc.stats.events_overflowed == 2
    assert len([r for r in caplog.records if "webhook queue full" in r.getMessage()]) == 1  # not one per drop
    clock[0] = 3.0
    svc._tick()
    assert out.sent == [{"name": "channel_vacated", "channel": "x"}]
