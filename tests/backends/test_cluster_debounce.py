"""The cluster-wide webhook delay (vask.cluster.debounce) on the real shared stores, with the interleavings
that two nodes can produce: a departure on one node and a return on another inside the delay must report
nothing at all, whichever node's store round trips land first.

Each "node" is a real replicator on a real hub whose steps the test calls in the order it wants; the store
under it is the real Redis or NATS JetStream KV (skipped, saying why, when unreachable), or the in-memory one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from test_shared_store import Factory, stores_of

from vask.apps.base import App, new_app
from vask.broker.memory import MemoryBroker, MemoryBus
from vask.cluster import debounce, sync
from vask.cluster import documents as docs
from vask.cluster.documents import Counts, Presence
from vask.cluster.replicator import Replicator
from vask.cluster.store import SharedStore
from vask.cluster.worker import channel_transitions
from vask.core.hub import Hub
from vask.core.observer import Observer

pytestmark = pytest.mark.asyncio(loop_scope="function")

DELAY = 0.3
APP = new_app("debounce-app", "debounce-key", "debounce-secret")
CHANNEL = "presence-room"


class Seen(Observer):
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


class Node(Replicator):
    """A real replicator on a real hub, never started: the tests drive its steps in a chosen order."""

    def __init__(self, node_id: str, store: SharedStore, seen: Seen) -> None:
        super().__init__(Hub(time.monotonic, seen), node_id, MemoryBroker(MemoryBus()), store, self.lookup,
                         vacate_delay=DELAY)

    @staticmethod
    async def lookup(app_id: str) -> App | None:
        return APP

    async def settled(self) -> None:
        await asyncio.sleep(DELAY + 0.2)
        await asyncio.gather(*self.background)


@pytest_asyncio.fixture(params=["memory", "redis", "nats"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    async for factory in stores_of(request.param):
        yield factory


async def two_nodes(make: Factory) -> tuple[Node, Node, Seen]:
    seen = Seen()
    return Node("one", await make(), seen), Node("two", await make(), seen), seen


async def count(node: Node, n: int) -> tuple[Counts | None, Counts | None]:
    return await docs.update(node.store, sync.channel_key(APP.id, CHANNEL), Counts,
                             docs.set_node_count(node.node_id, n))


async def test_a_return_between_the_departures_count_and_its_hold_reports_nothing(make: Factory) -> None:
    one, two, seen = await two_nodes(make)
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 1))
    assert seen.events == [("channel_occupied", None)]
    seen.events.clear()
    # node one's last subscriber leaves: marker first, then the count that empties the channel...
    token = await debounce.mark(one, APP.id, CHANNEL)
    left = await count(one, 0)
    # ...and before node one acts on that, a subscriber arrives on node two.
    await channel_transitions(two, APP.id, CHANNEL, *await count(two, 1))
    await channel_transitions(one, APP.id, CHANNEL, *left, token)
    await one.settled()
    assert seen.events == []


async def test_a_departure_that_was_not_the_last_takes_its_marker_back(make: Factory) -> None:
    one, two, seen = await two_nodes(make)
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 1))
    await channel_transitions(two, APP.id, CHANNEL, *await count(two, 1))
    token = await debounce.mark(one, APP.id, CHANNEL)
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 0), token)
    raw, _ = await one.store.get(debounce.marker_key(APP.id, CHANNEL, None))
    assert raw is None  # nothing held: the channel is still occupied on node two
    token = await debounce.mark(two, APP.id, CHANNEL)
    await channel_transitions(two, APP.id, CHANNEL, *await count(two, 0), token)
    await two.settled()
    assert seen.events == [("channel_occupied", None), ("channel_vacated", None)]  # the real vacate, once


async def test_a_departure_without_a_return_is_reported_after_the_delay(make: Factory) -> None:
    one, _, seen = await two_nodes(make)
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 1))
    token = await debounce.mark(one, APP.id, CHANNEL)
    await channel_transitions(one, APP.id, CHANNEL, *await count(one, 0), token)
    assert seen.events == [("channel_occupied", None)]  # held...
    await one.settled()
    assert seen.events == [("channel_occupied", None), ("channel_vacated", None)]  # ...then sent


async def test_a_dead_nodes_held_member_removed_is_sent_by_whoever_cleans_up(make: Factory) -> None:
    one, two, seen = await two_nodes(make)
    await debounce.mark(one, APP.id, CHANNEL, "u1")
    # node one dies here (its member entry already gone); node two cleans up after it
    await debounce.release_abandoned(two, "one")
    assert seen.events == [("member_removed", "u1")]
    # node one marks u2's departure but dies before its presence entry goes: the clean-up's own transition
    # will report it, so the marker is dropped without a webhook
    await docs.update(one.store, sync.presence_key(APP.id, CHANNEL), Presence,
                      docs.set_presence("one", {"u2": (1, None)}, 100, set()))
    await debounce.mark(one, APP.id, CHANNEL, "u2")
    key = debounce.marker_key(APP.id, CHANNEL, "u2")
    await debounce.release_abandoned(two, "one")
    assert seen.events == [("member_removed", "u1")]
    assert (await two.store.get(key))[0] is None
