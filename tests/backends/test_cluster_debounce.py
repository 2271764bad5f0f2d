"""The cluster-wide webhook delay (vask.cluster.debounce) on the real shared stores, with the interleavings
that two nodes can produce: a departure on one node and a return on another inside the delay must report
nothing at all, whichever node's store round trips land first.

Each "node" is a small stand-in for ClusterHub holding only what the debounce and the worker's transition step
use; the store under it is the real Redis or NATS JetStream KV (skipped, saying why, when unreachable).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import pytest
import pytest_asyncio
from test_shared_store import Factory, stores_of

from vask.apps.base import new_app
from vask.cluster import debounce, sync
from vask.cluster.store import SharedStore, decode, set_node_count, update
from vask.cluster.worker import channel_transitions

pytestmark = pytest.mark.asyncio(loop_scope="function")

DELAY = 0.3
APP = new_app("debounce-app", "debounce-key", "debounce-secret")
CHANNEL = "presence-room"


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []

    def channel_occupied(self, app: Any, channel: str) -> None:
        self.events.append(("channel_occupied", None))

    def channel_vacated(self, app: Any, channel: str) -> None:
        self.events.append(("channel_vacated", None))

    def member_removed(self, app: Any, channel: str, user_id: str) -> None:
        self.events.append(("member_removed", user_id))

    def subscription_count(self, app: Any, channel: str, count: int) -> None:
        pass


class Node:
    """What debounce and channel_transitions read off a ClusterHub."""

    def __init__(self, node_id: str, store: SharedStore, seen: Seen) -> None:
        self.node_id, self.store, self.observer = node_id, store, seen
        self.vacate_delay, self.quiet = DELAY, False
        self.apps: dict[str, Any] = {}
        self.background: set[asyncio.Task[None]] = set()

    def spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.background.add(task)

    async def app_by_id(self, app_id: str) -> Any:
        return APP

    @staticmethod
    def decode(raw: bytes | None) -> dict[str, Any] | None:
        return decode(raw)

    def announce(self, *args: Any, **kwargs: Any) -> None:
        pass

    async def settled(self) -> None:
        await asyncio.sleep(DELAY + 0.2)
        await asyncio.gather(*self.background)


@pytest_asyncio.fixture(params=["redis", "nats"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    async for factory in stores_of(request.param):
        yield factory


async def two_nodes(make: Factory) -> tuple[Node, Node, Seen]:
    seen = Seen()
    return Node("one", await make(), seen), Node("two", await make(), seen), seen


async def count(node: Node, n: int) -> tuple[Any, Any]:
    return await update(node.store, sync.channel_key(APP.id, CHANNEL), set_node_count(node.node_id, n))


async def test_a_return_between_the_departures_count_and_its_hold_reports_nothing(make: Factory) -> None:
    one, two, seen = await two_nodes(make)
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 1))  # type: ignore[arg-type]
    assert seen.events == [("channel_occupied", None)]
    seen.events.clear()
    # node one's last subscriber leaves: marker first, then the count that empties the channel...
    token = await debounce.mark(one, APP.id, CHANNEL)  # type: ignore[arg-type]
    left = await count(one, 0)
    # ...and before node one acts on that, a subscriber arrives on node two.
    await channel_transitions(two, APP.id, CHANNEL, *await count(two, 1))  # type: ignore[arg-type]
    await channel_transitions(one, APP.id, CHANNEL, *left, token)  # type: ignore[arg-type]
    await one.settled()
    assert seen.events == []


async def test_a_departure_that_was_not_the_last_takes_its_marker_back(make: Factory) -> None:
    one, two, seen = await two_nodes(make)
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 1))  # type: ignore[arg-type]
    await channel_transitions(two, APP.id, CHANNEL, *await count(two, 1))  # type: ignore[arg-type]
    token = await debounce.mark(one, APP.id, CHANNEL)  # type: ignore[arg-type]
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 0), token)  # type: ignore[arg-type]
    raw, _ = await one.store.get(debounce.marker_key(APP.id, CHANNEL, None))
    assert raw is None  # nothing held: the channel is still occupied on node two
    token = await debounce.mark(two, APP.id, CHANNEL)  # type: ignore[arg-type]
    await channel_transitions(two, APP.id, CHANNEL, *await count(two, 0), token)  # type: ignore[arg-type]
    await two.settled()
    assert seen.events == [("channel_occupied", None), ("channel_vacated", None)]  # the real vacate, once


async def test_a_departure_without_a_return_is_reported_after_the_delay(make: Factory) -> None:
    one, _, seen = await two_nodes(make)
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 1))  # type: ignore[arg-type]
    token = await debounce.mark(one, APP.id, CHANNEL)  # type: ignore[arg-type]
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 0), token)  # type: ignore[arg-type]
    assert seen.events == [("channel_occupied", None)]  # held...
    await one.settled()
    assert seen.events == [("channel_occupied", None), ("channel_vacated", None)]  # ...then sent


async def test_a_dead_nodes_held_member_removed_is_sent_by_whoever_cleans_up(make: Factory) -> None:
    one, two, seen = await two_nodes(make)
    await debounce.mark(one, APP.id, CHANNEL, "u1")  # type: ignore[arg-type]
    # node one dies here (its member entry already gone); node two cleans up after it
    await debounce.release_abandoned(two, "one")  # type: ignore[arg-type]
    assert seen.events == [("member_removed", "u1")]
    # node one marks u2's departure but dies before its presence entry goes: the clean-up's own transition
    # will report it, so the marker is dropped without a webhook
    await update(one.store, sync.presence_key(APP.id, CHANNEL), sync.set_presence("one", {"u2": (1, None)}, 100, set()))
    await debounce.mark(one, APP.id, CHANNEL, "u2")  # type: ignore[arg-type]
    key = debounce.marker_key(APP.id, CHANNEL, "u2")
    await debounce.release_abandoned(two, "one")  # type: ignore[arg-type]
    assert seen.events == [("member_removed", "u1")]
    assert (await two.store.get(key))[0] is None
