"""The cluster's logic (vask.cluster: replicator, worker, janitor, webhook delay) on in-memory backends and a
virtual clock: several nodes in one process, each a real Hub with a real Replicator, sharing a MemoryStore
space and a MemoryBus. Node timeouts and webhook delays take no real time, so the failure cases that the
Redis/NATS suites can only sample (a crash, an outage longer than node_timeout, a return inside the delay,
two nodes racing on one member) are checked exactly here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from helpers import KEY, Client, RecordingObserver, World, make_app

from vask.apps.base import App, AppSettings
from vask.broker.memory import MemoryBroker, MemoryBus
from vask.cluster.memory import MemorySpace, MemoryStore
from vask.cluster.replicator import Replicator
from vask.cluster.sync import presence_key
from virtual_time import VirtualLoop, run

NODE_TIMEOUT = 6.0
DELAY = 3.0  # webhook_vacate_delay
ROOM = "presence-room"
APP = make_app(client_events=True)
SMALL = App(id="4", key=KEY, secret=APP.secret, settings=AppSettings(max_presence_members=1))


class Cluster:
    """Nodes sharing one store space and one bus, with one webhook log (what the apps' endpoints receive)."""

    def __init__(self, loop: VirtualLoop) -> None:
        self.loop = loop
        self.space = MemorySpace()
        self.bus = MemoryBus()
        self.webhooks = RecordingObserver()
        self.nodes: dict[str, Node] = {}

    async def start(self, *names: str) -> list[Node]:
        started = [Node(self, name) for name in names]
        for node in started:
            self.nodes[node.name] = node
            await node.replicator.start()
        await self.settle()
        return started

    async def settle(self, seconds: float = 1.0) -> None:
        """Let every node's background work run for ``seconds`` of virtual time."""
        await asyncio.sleep(seconds)

    def hooks(self, *names: str) -> list[tuple[Any, ...]]:
        return self.webhooks.named(*(names or ("channel_occupied", "channel_vacated", "member_added",
                                               "member_removed")))


class Node:
    def __init__(self, cluster: Cluster, name: str) -> None:
        self.name = name
        self.world = World(APP)
        self.world.clock = cluster.loop.time  # type: ignore[assignment]
        self.world.hub.clock = cluster.loop.time
        self.world.hub.observer = cluster.webhooks
        ttls = {"nodes": NODE_TIMEOUT, "locks": max(NODE_TIMEOUT, 10.0), "cache": 1800.0}
        store = MemoryStore(ttls, cluster.loop.time, cluster.space)
        self.replicator = Replicator(self.world.hub, name, MemoryBroker(cluster.bus), store, self.lookup,
                                     NODE_TIMEOUT, vacate_delay=DELAY, wall=cluster.loop.wall)

    @staticmethod
    async def lookup(app_id: str) -> Any:
        return {APP.id: APP, SMALL.id: SMALL}.get(app_id)

    def connect(self, app: App = APP) -> Client:
        self.world.app = app
        return self.world.connect()

    async def crash(self) -> None:
        """Stop without a goodbye: its loops end, its heartbeat expires, its entries stay in the store."""
        for task in self.replicator.loops:
            task.cancel()
        await asyncio.gather(*self.replicator.loops, return_exceptions=True)
        self.replicator.broker.healthy = False
        await self.replicator.broker.close()


def cluster_test(body: Callable[[Cluster], Awaitable[None]]) -> None:
    async def main(loop: VirtualLoop) -> None:
        cluster = Cluster(loop)
        try:
            await body(cluster)
        finally:
            for node in cluster.nodes.values():
                if node.replicator.broker.healthy:
                    await node.replicator.stop()

    run(main)


def events(client: Client, channel: str = ROOM) -> list[tuple[str, Any]]:
    return [(f["event"], f.get("data")) for f in client.frames() if f.get("channel") == channel]


async def ann_on_a_and_bob_on_b(cluster: Cluster) -> tuple[Node, Node, Client, Client]:
    """Two nodes with one presence member each, settled: frames read and webhooks forgotten so far."""
    a, b = await cluster.start("a", "b")
    ann, bob = a.connect(), b.connect()
    ann.join(ROOM, "ann")
    bob.join(ROOM, "bob")
    await cluster.settle()
    ann.frames(), bob.frames()
    cluster.webhooks.calls.clear()
    return a, b, ann, bob


def test_a_member_on_one_node_is_seen_on_the_other_and_reported_once() -> None:
    async def body(cluster: Cluster) -> None:
        a, b = await cluster.start("a", "b")
        ann, bob = a.connect(), b.connect()
        ann.join(ROOM, "ann")
        await cluster.settle()
        bob.join(ROOM, "bob")
        await cluster.settle()
        assert [e for e, _ in events(ann)] == ["pusher_internal:subscription_succeeded",
                                               "pusher_internal:member_added"]
        succeeded = events(bob)[0]
        assert succeeded[0] == "pusher_internal:subscription_succeeded"
        assert sorted(json.loads(succeeded[1])["presence"]["ids"]) == ["ann", "bob"]
        # (occupancy and membership are separate documents: their webhooks may come in either order)
        assert sorted(cluster.hooks()) == [("channel_occupied", APP.id, ROOM), ("member_added", APP.id, ROOM, "ann"),
                                           ("member_added", APP.id, ROOM, "bob")]

    cluster_test(body)


def test_a_crashed_nodes_members_leave_after_node_timeout_once() -> None:
    async def body(cluster: Cluster) -> None:
        a, b, _ann, bob = await ann_on_a_and_bob_on_b(cluster)
        await a.crash()
        await cluster.settle(NODE_TIMEOUT - 1)
        assert cluster.hooks() == []  # not yet judged dead
        await cluster.settle(NODE_TIMEOUT + DELAY + 2)
        assert cluster.hooks() == [("member_removed", APP.id, ROOM, "ann")]
        assert ("pusher_internal:member_removed", '{"user_id":"ann"}') in events(bob)
        assert (await b.replicator.store.get(presence_key(APP.id, ROOM)))[0] is not None  # bob is still there
        assert b.world.hub.app_connections(APP.id) == 1

    cluster_test(body)


def test_a_store_outage_longer_than_node_timeout_reaps_nobody_and_reports_nothing() -> None:
    async def body(cluster: Cluster) -> None:
        a, b, ann, bob = await ann_on_a_and_bob_on_b(cluster)
        cluster.space.go_down()
        await cluster.settle(NODE_TIMEOUT * 3)
        assert not a.replicator.healthy and not b.replicator.healthy
        cluster.space.come_back()
        await cluster.settle(NODE_TIMEOUT * 3)  # long enough for a wrong reap to have happened
        assert a.replicator.healthy and b.replicator.healthy
        assert cluster.hooks() == []
        assert events(ann) == [] and events(bob) == []  # no member left, so no frame either
        assert a.world.hub.app_connections(APP.id) == 2

    cluster_test(body)


def test_a_store_that_lost_its_data_is_repopulated_without_webhooks() -> None:
    async def body(cluster: Cluster) -> None:
        a, _b, ann, bob = await ann_on_a_and_bob_on_b(cluster)
        cluster.space.lose_data()
        await cluster.settle(NODE_TIMEOUT * 2)
        assert cluster.hooks() == []
        assert events(ann) == [] and events(bob) == []
        raw, _ = await a.replicator.store.get(presence_key(APP.id, ROOM))
        assert raw is not None and b"ann" in raw and b"bob" in raw

    cluster_test(body)


def test_leaving_one_node_and_rejoining_on_another_within_the_delay_reports_nothing() -> None:
    async def body(cluster: Cluster) -> None:
        _, b, first, _watcher = await ann_on_a_and_bob_on_b(cluster)
        first.disconnect()
        await cluster.settle(DELAY / 3)
        again = b.connect()
        again.join(ROOM, "ann")
        await cluster.settle(DELAY * 3)
        assert cluster.hooks() == []

    cluster_test(body)


def test_leaving_for_longer_than_the_delay_reports_the_departure_once() -> None:
    async def body(cluster: Cluster) -> None:
        _, _, ann, _watcher = await ann_on_a_and_bob_on_b(cluster)
        ann.disconnect()
        await cluster.settle(DELAY - 1)
        assert cluster.hooks() == []  # held
        await cluster.settle(2.5)
        assert cluster.hooks() == [("member_removed", APP.id, ROOM, "ann")]
        await cluster.settle(DELAY * 3)
        assert len(cluster.hooks()) == 1

    cluster_test(body)


def test_two_nodes_racing_on_one_member_report_it_once() -> None:
    async def body(cluster: Cluster) -> None:
        a, b = await cluster.start("a", "b")
        on_a, on_b = a.connect(), b.connect()
        on_a.join(ROOM, "ann")  # the same user, joining on two nodes in the same loop pass
        on_b.join(ROOM, "ann")
        await cluster.settle()
        assert cluster.hooks("member_added") == [("member_added", APP.id, ROOM, "ann")]
        assert cluster.hooks("channel_occupied") == [("channel_occupied", APP.id, ROOM)]
        on_a.disconnect()
        on_b.disconnect()
        await cluster.settle(DELAY + 2)
        assert cluster.hooks("member_removed") == [("member_removed", APP.id, ROOM, "ann")]
        assert cluster.hooks("channel_vacated") == [("channel_vacated", APP.id, ROOM)]

    cluster_test(body)


def test_the_last_subscriber_leaving_and_returning_elsewhere_keeps_the_channel_occupied() -> None:
    async def body(cluster: Cluster) -> None:
        a, b = await cluster.start("a", "b")
        one = a.connect()
        one.subscribe("news")
        await cluster.settle()
        one.disconnect()
        await cluster.settle(0.5)
        two = b.connect()
        two.subscribe("news")
        await cluster.settle(DELAY * 2)
        assert cluster.hooks() == [("channel_occupied", APP.id, "news")]

    cluster_test(body)


def test_a_client_event_reaches_the_other_node_but_not_its_sender() -> None:
    async def body(cluster: Cluster) -> None:
        a, b = await cluster.start("a", "b")
        sender, receiver = a.connect(), b.connect()
        sender.subscribe("private-chat", sign=True)
        receiver.subscribe("private-chat", sign=True)
        await cluster.settle()
        sender.frames(), receiver.frames()
        sender.send("client-hello", {"n": 1}, "private-chat")
        await cluster.settle(0.1)
        assert events(receiver, "private-chat") == [("client-hello", {"n": 1})]
        assert events(sender, "private-chat") == []

    cluster_test(body)


def test_a_presence_cache_channel_replays_its_last_event_after_succeeded_on_another_node() -> None:
    async def body(cluster: Cluster) -> None:
        a, b = await cluster.start("a", "b")
        a.world.hub.publish(APP, "presence-cache-scores", "score", '{"n":3}')
        await cluster.settle()
        late = b.connect()
        late.join("presence-cache-scores", "zoe")
        await cluster.settle()
        got = events(late, "presence-cache-scores")
        assert [e for e, _ in got] == ["pusher_internal:subscription_succeeded", "score"]
        assert got[1][1] == '{"n":3}'

    cluster_test(body)


def test_a_full_presence_channel_refuses_a_join_on_another_node_as_one_node_does() -> None:
    async def body(cluster: Cluster) -> None:
        a, b = await cluster.start("a", "b")
        first = a.connect(SMALL)
        first.join(ROOM, "ann")
        await cluster.settle()
        second = b.connect(SMALL)
        second.join(ROOM, "bob")
        await cluster.settle()
        frames = second.frames()
        message = f"Presence channel {ROOM} is full: at most 1 members"
        assert {"event": "pusher:error", "data": {"code": 4100, "message": message}} in frames
        refused = [f for f in frames if f["event"] == "pusher:subscription_error"]
        assert refused and refused[0]["channel"] == ROOM and refused[0]["data"]["status"] == 403
        assert ROOM not in second.conn.subscriptions
        assert cluster.hooks("member_added") == [("member_added", SMALL.id, ROOM, "ann")]

    cluster_test(body)
