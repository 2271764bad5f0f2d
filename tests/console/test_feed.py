"""ConsoleFeed on one node: watching only while a viewer is open, per-viewer filters and speed limit."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from vask.console.events import ConsoleEvent
from vask.console.feed import VIEWER_QUEUE, ConsoleFeed
from vask.console.filters import ConsoleFilter

pytestmark = pytest.mark.asyncio(loop_scope="function")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ev(app: str = "a", kind: str = "api_message", channel: str = "c", n: int = 0) -> ConsoleEvent:
    return ConsoleEvent(app, kind, 1.0, "local", "", channel, None, {"n": n})


async def drain(viewer: object, count: int) -> list[ConsoleEvent]:
    out = []
    async for item in viewer:  # type: ignore[attr-defined]
        out.append(item)
        if len(out) == count:
            break
    return out


async def test_watching_follows_viewers() -> None:
    feed = ConsoleFeed(log_events=False)
    assert not feed.watching("a") and not feed.active
    first = feed.subscribe("a", ConsoleFilter())
    second = feed.subscribe("a", ConsoleFilter())
    assert feed.watching("a") and not feed.watching("b") and feed.active
    first.close()
    assert feed.watching("a")
    second.close()
    second.close()  # idempotent
    assert not feed.watching("a") and not feed.active


async def test_emit_reaches_only_that_apps_matching_viewers() -> None:
    feed = ConsoleFeed(log_events=False)
    everything = feed.subscribe("a")
    only_errors = feed.subscribe("a", ConsoleFilter(frozenset({"error"})))
    other_app = feed.subscribe("b")
    feed.emit(ev("a", "api_message", n=1))
    feed.emit(ev("a", "error", n=2))
    feed.emit(ev("c", "error", n=3))  # nobody watches c: dropped at once
    assert [e.details["n"] for e in await drain(everything, 2)] == [1, 2]
    assert [e.details["n"] for e in await drain(only_errors, 1)] == [2]
    feed.emit(ev("b", n=4))
    assert [e.details["n"] for e in await drain(other_app, 1)] == [4]


async def test_note_stamps_node_region_and_drops_none_details() -> None:
    feed = ConsoleFeed("node-1", "eu", log_events=False, wall=lambda: 123.5)
    viewer = feed.subscribe("a")
    feed.note("a", "subscribed", "presence-x", "1.1", user_id=None, origin="https://x")
    (got,) = await drain(viewer, 1)
    assert got.to_dict() == {"app_id": "a", "type": "subscribed", "at": 123.5, "node": "node-1", "region": "eu",
                             "channel": "presence-x", "socket_id": "1.1", "details": {"origin": "https://x"}}
    assert orjson.loads(got.to_json()) == got.to_dict()
    assert ConsoleEvent.from_dict(got.to_dict()) == got


async def test_speed_limit_drops_and_counts_then_refills() -> None:
    clock = Clock()
    feed = ConsoleFeed(log_events=False, clock=clock)
    viewer = feed.subscribe("a", max_per_second=10)
    for n in range(25):
        feed.emit(ev(n=n))
    assert viewer.dropped == 15
    assert [e.details["n"] for e in await drain(viewer, 10)] == list(range(10))
    clock.now += 0.5  # half a second: 5 more tokens
    for n in range(25, 35):
        feed.emit(ev(n=n))
    assert viewer.dropped == 20
    assert [e.details["n"] for e in await drain(viewer, 5)] == list(range(25, 30))


async def test_filtered_out_events_do_not_spend_the_limit() -> None:
    clock = Clock()
    feed = ConsoleFeed(log_events=False, clock=clock)
    viewer = feed.subscribe("a", ConsoleFilter(channel="wanted"), max_per_second=2)
    for _ in range(100):
        feed.emit(ev(channel="noise"))
    feed.emit(ev(channel="wanted", n=7))
    assert viewer.dropped == 0
    assert [e.details["n"] for e in await drain(viewer, 1)] == [7]


async def test_a_viewer_that_does_not_read_is_bounded() -> None:
    clock = Clock()
    feed = ConsoleFeed(log_events=False, clock=clock)
    viewer = feed.subscribe("a", max_per_second=10_000)
    for n in range(VIEWER_QUEUE + 500):
        clock.now += 0.01
        feed.emit(ev(n=n))
    assert viewer.dropped == 500


async def test_close_ends_a_waiting_iteration() -> None:
    feed = ConsoleFeed(log_events=False)
    viewer = feed.subscribe("a")
    waiting = asyncio.ensure_future(drain(viewer, 1))
    await asyncio.sleep(0)
    viewer.close()
    assert await asyncio.wait_for(waiting, 1) == []
    feed.emit(ev())  # nobody watches any more


async def test_bad_speed_limit() -> None:
    with pytest.raises(ValueError, match="above 0"):
        ConsoleFeed().subscribe("a", max_per_second=0)


async def test_bus_messages_watch_and_expiry() -> None:
    """What another node says on the console bus: its watched apps (believed for ttl), and events."""
    clock = Clock()
    feed = ConsoleFeed("me", log_events=False, clock=clock)
    feed.receive(orjson.dumps({"k": "watch", "o": "other", "apps": ["a"], "ttl": 6}))
    assert feed.watching("a") and feed.remote_apps == {"a"}
    feed.receive(orjson.dumps({"k": "watch", "o": "me", "apps": ["z"], "ttl": 6}))  # our own echo
    assert not feed.watching("z")
    clock.now += 7
    feed._recompute()  # what the watch loop does every interval
    assert not feed.watching("a")
    viewer = feed.subscribe("b")
    feed.receive(orjson.dumps({"k": "ev", "o": "other", "e": ev("b", n=9).to_dict()}))
    feed.receive(b"not json")
    feed.receive(orjson.dumps({"k": "ev", "o": "other", "e": {"type": "bogus"}}))
    assert [e.details["n"] for e in await drain(viewer, 1)] == [9]
    assert feed.received == 1


async def test_a_failing_viewer_never_reaches_the_emit_point() -> None:
    feed = ConsoleFeed(log_events=False)
    viewer = feed.subscribe("a")

    def broken(event: ConsoleEvent) -> None:
        raise RuntimeError("bug in a viewer")

    viewer.offer = broken  # type: ignore[method-assign]
    feed.note("a", "connection", None, "1.1")  # logged, not raised into the hub
    assert feed.emitted == 1
