"""Scale-out (issue 5): 2-3 real `vask serve` nodes on the real Redis or NATS, driven with raw WebSocket
clients on different nodes and pusher-http-python for publishing, queries and auth.

Every test runs once per broker; each cluster uses a prefix of its own, so nothing is shared between tests.
"Exactly once" is checked by waiting for the frame, then a quiet window in which no duplicate may arrive.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from cluster_helpers import (  # noqa: F401  (fixtures)
    APP,
    NATS_URL,
    REDIS_URL,
    Client,
    Cluster,
    broker_fixture,
    broker_problem,
    call,
    close_all,
    cluster_factory_fixture,
    eventually,
    open_clients,
    shared_document,
)

from conftest import VaskServer
from private_nats import free_port
from vask.cluster import sync

pytestmark = pytest.mark.asyncio(loop_scope="function")

QUIET = 0.5  # seconds in which a duplicate would have arrived


@pytest.fixture(scope="module", params=["redis", "redis-cluster", "nats"])
def trio(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[VaskServer]]:
    """Three nodes A, B, C of one cluster, shared by this module's tests (each uses channels and users of its
    own), so the nodes start once per broker: the machine's Redis, a private Redis Cluster (sharded pub/sub,
    documents on three shards) and the machine's NATS."""
    problem = broker_problem(request.param)
    if problem:
        pytest.skip(problem)
    url = {"redis": REDIS_URL, "nats": NATS_URL}.get(request.param) or request.getfixturevalue("redis_cluster")
    cluster = Cluster(tmp_path_factory.mktemp("trio"), url, [APP])
    try:
        yield cluster.start(3)
    finally:
        cluster.stop()


def signer(node: VaskServer) -> Any:
    return node.pusher()


async def presence(node: VaskServer, channel: str, user_id: str, info: Any = None) -> tuple[Client, dict]:
    client = await Client.open(node, name=f"{user_id}@{node.port}")
    user = {"user_id": user_id, **({"user_info": info} if info is not None else {})}
    frame = await client.subscribe(channel, signer(node), user)
    assert frame is not None
    return client, frame["payload"]["presence"]


def ids(client: Client, event: str, channel: str) -> list[str]:
    return [f["payload"]["user_id"] for f in client.find(event, channel)]


async def test_publish_reaches_every_node_exactly_once(trio: list[VaskServer]) -> None:
    clients = [await Client.open(node) for node in trio for _ in range(2)]
    for client in clients:
        await client.subscribe("room")
    for i, node in enumerate(trio):  # through each node's HTTP API in turn, one event to two channels
        await call(node.pusher().trigger, ["room", "elsewhere"], f"event-{i}", {"i": i})
    for client in clients:
        for i in range(3):
            assert (await client.wait_for(f"event-{i}", "room"))["payload"] == {"i": i}
    await asyncio.sleep(QUIET)
    for client in clients:
        for i in range(3):
            assert len(client.find(f"event-{i}")) == 1, (client.name, client.find(f"event-{i}"))
    await close_all(clients)


async def test_socket_id_exclusion_across_nodes(trio: list[VaskServer]) -> None:
    a, b, c = trio
    excluded, other_b, on_a, on_c = [await Client.open(n) for n in (b, b, a, c)]
    for client in (excluded, other_b, on_a, on_c):
        await client.subscribe("news")
    await call(a.pusher().trigger, "news", "not-for-you", {"x": 1}, excluded.socket_id)
    # Per-channel order holds for publishes through one node: once the marker is in, so is anything before it.
    await call(a.pusher().trigger, "news", "marker", {})
    for client in (excluded, other_b, on_a, on_c):
        await client.wait_for("marker", "news")
    assert excluded.find("not-for-you") == []
    for client in (other_b, on_a, on_c):
        assert len(client.find("not-for-you")) == 1
    await close_all([excluded, other_b, on_a, on_c])


async def test_order_of_a_burst_through_one_node_is_kept_on_every_node(trio: list[VaskServer]) -> None:
    clients = [await Client.open(node) for node in trio]
    for client in clients:
        await client.subscribe("ordered")
    publisher = trio[0].pusher()

    def burst() -> None:
        for i in range(50):
            publisher.trigger("ordered", "seq", {"i": i})

    await asyncio.to_thread(burst)
    for client in clients:
        await client.wait_for("seq", "ordered", count=50)
    await asyncio.sleep(QUIET)
    for client in clients:
        assert [f["payload"]["i"] for f in client.find("seq")] == list(range(50)), client.name
    await close_all(clients)


async def test_client_events_cross_nodes_without_echo(trio: list[VaskServer]) -> None:
    a, b, c = trio
    sender, same_node = await Client.open(a), await Client.open(a)
    far_b, far_c = await Client.open(b), await Client.open(c)
    for client in (sender, same_node, far_b, far_c):
        await client.subscribe("private-chat", signer(a))
    await sender.send("client-typing", {"who": "sender"}, "private-chat")
    for client in (same_node, far_b, far_c):
        frame = await client.wait_for("client-typing", "private-chat")
        assert frame["payload"] == {"who": "sender"} and "user_id" not in frame

    # presence: the receivers on other nodes learn who sent it
    alice, _ = await presence(a, "presence-chat", "alice")
    bob, _ = await presence(b, "presence-chat", "bob")
    await alice.send("client-hello", {"text": "hi"}, "presence-chat")
    frame = await bob.wait_for("client-hello", "presence-chat")
    assert frame["user_id"] == "alice" and frame["payload"] == {"text": "hi"}
    await asyncio.sleep(QUIET)
    assert sender.find("client-typing") == [] and alice.find("client-hello") == []  # never echoed
    for client in (same_node, far_b, far_c):
        assert len(client.find("client-typing")) == 1
    assert len(bob.find("client-hello")) == 1
    await close_all([sender, same_node, far_b, far_c, alice, bob])


async def test_presence_members_see_each_other_across_nodes(trio: list[VaskServer]) -> None:
    a, b, c = trio
    channel = "presence-lobby"
    alice, first = await presence(a, channel, "alice", {"name": "Alice"})
    assert first["ids"] == ["alice"] and first["count"] == 1
    bob, second = await presence(b, channel, "bob", {"name": "Bob"})
    assert sorted(second["ids"]) == ["alice", "bob"] and second["count"] == 2
    assert second["hash"] == {"alice": {"name": "Alice"}, "bob": {"name": "Bob"}}
    added = await alice.wait_for("pusher_internal:member_added", channel)
    assert added["payload"] == {"user_id": "bob", "user_info": {"name": "Bob"}}
    carol, third = await presence(c, channel, "carol")
    assert sorted(third["ids"]) == ["alice", "bob", "carol"]
    for client in (alice, bob):
        await client.wait_for("pusher_internal:member_added", channel, where=lambda f: f["payload"]["user_id"]
                              == "carol")
    await bob.close()
    for client in (alice, carol):
        await client.wait_for("pusher_internal:member_removed", channel)
    await asyncio.sleep(QUIET)
    assert ids(alice, "pusher_internal:member_added", channel) == ["bob", "carol"]
    assert ids(alice, "pusher_internal:member_removed", channel) == ["bob"]
    assert ids(carol, "pusher_internal:member_removed", channel) == ["bob"]
    assert ids(carol, "pusher_internal:member_added", channel) == []  # nobody joined after carol
    await close_all([alice, carol])


async def test_same_user_on_two_nodes_is_one_member(trio: list[VaskServer]) -> None:
    a, b, c = trio
    channel = "presence-tabs"
    alice, _ = await presence(a, channel, "alice")
    dave_a, _ = await presence(a, channel, "dave")
    dave_b, _ = await presence(b, channel, "dave")
    erin, seen = await presence(c, channel, "erin")
    assert sorted(seen["ids"]) == ["alice", "dave", "erin"] and seen["count"] == 3
    await dave_a.close()  # dave still has a connection on B: still a member
    await asyncio.sleep(1.0)
    users = await call(c.pusher().users_info, channel)
    assert sorted(u["id"] for u in users["users"]) == ["alice", "dave", "erin"]
    assert ids(alice, "pusher_internal:member_removed", channel) == []
    await dave_b.close()
    for client in (alice, erin):
        await client.wait_for("pusher_internal:member_removed", channel)
    await asyncio.sleep(QUIET)
    assert ids(alice, "pusher_internal:member_added", channel) == ["dave", "erin"]  # dave once
    for client in (alice, erin):
        assert ids(client, "pusher_internal:member_removed", channel) == ["dave"]
    await close_all([alice, erin])


async def test_api_answers_are_cluster_wide_and_the_same_on_every_node(trio: list[VaskServer]) -> None:
    a, b, c = trio
    members = [await presence(a, "presence-api", "u1"), await presence(b, "presence-api", "u2"),
               await presence(c, "presence-api", "u3"), await presence(c, "presence-api", "u3")]
    public = [await Client.open(node) for node in (a, b, b)]
    for client in public:
        await client.subscribe("public-api")

    async def answers(node: VaskServer) -> dict[str, Any]:
        p = node.pusher()
        return {
            "users": sorted(u["id"] for u in (await call(p.users_info, "presence-api"))["users"]),
            "presence": await call(p.channel_info, "presence-api", ["user_count"]),
            "public": await call(p.channel_info, "public-api", ["subscription_count"]),
            "channels": await call(p.channels_info),
            "presence_channels": await call(p.channels_info, "presence-", ["user_count"]),
        }

    expected = {
        "users": ["u1", "u2", "u3"],
        "presence": {"occupied": True, "user_count": 3},
        "public": {"occupied": True, "subscription_count": 3},
        "channels": {"channels": {"presence-api": {}, "public-api": {}}},
        "presence_channels": {"channels": {"presence-api": {"user_count": 3}}},
    }

    async def all_nodes_agree() -> None:
        for node in trio:
            assert await answers(node) == expected, node.port

    await eventually(all_nodes_agree, timeout=5)
    # subscription_count events count the whole cluster too
    await eventually(lambda: _last_count(public[0], "public-api", 3), timeout=5)
    await close_all([client for client, _ in members] + public)


async def _last_count(client: Client, channel: str, expected: int) -> None:
    counts = client.find("pusher_internal:subscription_count", channel)
    assert counts and counts[-1]["payload"]["subscription_count"] == expected, counts


async def signed_in(node: VaskServer, user: dict[str, Any]) -> Client:
    client = await Client.open(node, name=f"{user['id']}@{node.port}")
    await client.signin(signer(node), user)
    return client


async def test_send_to_user_reaches_the_user_on_other_nodes(trio: list[VaskServer]) -> None:
    a, b, c = trio
    zoe_b, zoe_c, other = await signed_in(b, {"id": "zoe"}), await signed_in(c, {"id": "zoe"}), \
        await signed_in(a, {"id": "yan"})
    await call(a.pusher().send_to_user, "zoe", "notice", {"text": "for zoe"})
    for client in (zoe_b, zoe_c):
        frame = await client.wait_for("notice", "#server-to-user-zoe")
        assert frame["payload"] == {"text": "for zoe"}
    await call(a.pusher().send_to_user, "yan", "marker", {})
    await other.wait_for("marker")
    await asyncio.sleep(QUIET)
    assert other.find("notice") == []
    assert len(zoe_b.find("notice")) == 1 and len(zoe_c.find("notice")) == 1
    await close_all([zoe_b, zoe_c, other])


async def test_terminate_user_connections_closes_them_on_other_nodes(trio: list[VaskServer]) -> None:
    a, b, _ = trio
    target, bystander = await signed_in(b, {"id": "mallory"}), await signed_in(b, {"id": "trent"})
    await call(a.pusher().terminate_user_connections, "mallory")
    assert await target.wait_closed(timeout=5) == 4009
    assert target.find("pusher:error")[-1]["payload"]["code"] == 4009
    await asyncio.sleep(QUIET)
    assert not bystander.closed.is_set()
    await close_all([bystander])


def watch_events(client: Client) -> list[tuple[str, list[str]]]:
    return [(e["name"], e["user_ids"]) for f in client.find("pusher_internal:watchlist_events")
            for e in f["payload"]["events"]]


async def test_watchlist_online_and_offline_across_nodes(trio: list[VaskServer]) -> None:
    a, b, c = trio
    watcher = await signed_in(a, {"id": "watcher", "watchlist": ["friend"]})
    await watcher.wait_for("pusher_internal:watchlist_events")
    friend_b = await signed_in(b, {"id": "friend"})
    await watcher.wait_for("pusher_internal:watchlist_events", count=2)
    friend_c = await signed_in(c, {"id": "friend"})  # a second connection: already online
    # Known race, not tested here: C writes friend's sign-in to the shared store some milliseconds after
    # signin_success (observed up to ~25 ms); if friend's connection on B closes inside that window the
    # watchers see a false offline/online flap. Give C's sync that time before B's connection closes.
    await asyncio.sleep(0.5)
    late = await signed_in(c, {"id": "late", "watchlist": ["friend"]})
    await late.wait_for("pusher_internal:watchlist_events")
    assert watch_events(late) == [("online", ["friend"])]
    await friend_b.close()
    await asyncio.sleep(1.0)
    assert watch_events(watcher) == [("offline", ["friend"]), ("online", ["friend"])]
    await friend_c.close()
    await watcher.wait_for("pusher_internal:watchlist_events", count=3)
    await late.wait_for("pusher_internal:watchlist_events", count=2)
    await asyncio.sleep(QUIET)
    assert watch_events(watcher) == [("offline", ["friend"]), ("online", ["friend"]), ("offline", ["friend"])]
    assert watch_events(late) == [("online", ["friend"]), ("offline", ["friend"])]
    await close_all([watcher, late])


async def test_cache_channel_event_published_on_one_node_replays_on_another(trio: list[VaskServer]) -> None:
    a, b, c = trio
    await call(a.pusher().trigger, "cache-news", "headline", {"title": "first"})
    reader = await Client.open(b)
    await reader.subscribe("cache-news")
    assert (await reader.wait_for("headline", "cache-news"))["payload"] == {"title": "first"}
    empty = await Client.open(c)
    await empty.subscribe("cache-never")
    await empty.wait_for("pusher:cache_miss", "cache-never")
    info = await call(c.pusher().channel_info, "cache-news", ["cache"])
    assert info["cache"]["data"] == '{"title": "first"}'
    await asyncio.sleep(QUIET)
    assert len(reader.find("headline")) == 1
    await close_all([reader, empty])


async def test_workers_share_one_port_and_deliver_exactly_once(cluster_factory: Any, broker: str) -> None:
    cluster: Cluster = cluster_factory(broker)
    server = cluster.node("--workers", "2", listeners=2)
    clients = await open_clients(server, 12)
    for client in clients:
        await client.subscribe("spread")

    async def counted() -> None:
        info = await call(server.pusher().channel_info, "spread", ["subscription_count"])
        assert info == {"occupied": True, "subscription_count": 12}  # whichever worker answers

    for _ in range(4):  # several HTTP connections: SO_REUSEPORT hands them to either worker
        await eventually(counted, timeout=5)
    # which worker holds which subscribers is only visible in the shared state: both hold some
    doc = await shared_document(cluster, sync.channel_key(APP["id"], "spread"))
    assert doc is not None and sorted(doc["n"]) == ["node0-w0", "node0-w1"], doc
    await call(server.pusher().trigger, "spread", "hello", {})
    for client in clients:
        await client.wait_for("hello", "spread")
    await asyncio.sleep(QUIET)
    assert all(len(client.find("hello")) == 1 for client in clients)
    await close_all(clients)


def _consecutive_free_ports(count: int) -> int:
    """A port P such that P .. P+count-1 are free right now (for the workers' admin ports)."""
    import socket

    for _ in range(50):
        base = free_port()
        if base + count - 1 > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


def _metrics(port: int) -> dict[str, float]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer t0ken"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read().decode()
    return {name: float(value) for name, value in
            (line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))}


async def test_each_worker_exposes_its_metrics_on_a_port_of_its_own(cluster_factory: Any, broker: str) -> None:
    cluster: Cluster = cluster_factory(broker)
    admin = _consecutive_free_ports(2)
    server = cluster.node("--workers", "2", listeners=2,
                          env={"VASK_ADMIN_TOKEN": "t0ken", "VASK_ADMIN_PORT": str(admin)})
    clients = await open_clients(server, 8)
    for client in clients:
        await client.subscribe("metered")
    for _ in range(6):  # fresh HTTP connections: SO_REUSEPORT spreads them over the workers
        await call(server.pusher().trigger, "metered", "tick", {})
    for client in clients:
        await eventually(lambda c=client: _wait_count(c, "tick", 6), timeout=5)

    async def summed() -> None:
        per_worker = [await asyncio.to_thread(_metrics, admin + i) for i in range(2)]
        # each worker counts the broadcasts published through it, once; together, every one
        assert sum(m["vask_broadcasts_total"] for m in per_worker) == 6, per_worker
        assert sum(m["vask_connections"] for m in per_worker) == 8, per_worker

    await eventually(summed, timeout=5)
    await close_all(clients)


async def _wait_count(client: Client, event: str, count: int) -> None:
    assert len(client.find(event)) == count


async def test_deployments_with_different_prefixes_do_not_see_each_other(cluster_factory: Any,
                                                                         broker: str) -> None:
    first: Cluster = cluster_factory(broker)
    second: Cluster = cluster_factory(broker)
    second.broker_via_env = True  # VASK_BROKER in the environment works the same as --broker
    x1, x2 = first.start(2)
    (y1,) = second.start(1)
    assert first.prefix != second.prefix
    on_x, on_y = await Client.open(x2), await Client.open(y1)  # same app id, key and channels
    for client in (on_x, on_y):
        await client.subscribe("shared")
    ux, _ = await presence(x2, "presence-shared", "ux")
    uy, _ = await presence(y1, "presence-shared", "uy")
    await call(x1.pusher().trigger, "shared", "from-x", {})
    await on_x.wait_for("from-x", "shared")
    await asyncio.sleep(QUIET)
    assert on_y.find("from-x") == []
    assert ids(uy, "pusher_internal:member_added", "presence-shared") == []
    assert ids(ux, "pusher_internal:member_added", "presence-shared") == []
    for node, user in ((x1, "ux"), (y1, "uy")):
        users = await call(node.pusher().users_info, "presence-shared")
        assert [u["id"] for u in users["users"]] == [user]
        info = await call(node.pusher().channel_info, "shared", ["subscription_count"])
        assert info == {"occupied": True, "subscription_count": 1}
    await close_all([on_x, on_y, ux, uy])


OTHER_APP = {"id": "535353", "key": "other-key", "secret": "other-secret", "client_events": True}


async def test_envelopes_stay_within_their_app_and_garbage_on_the_bus_is_ignored(cluster_factory: Any,
                                                                                 broker: str) -> None:
    cluster: Cluster = cluster_factory(broker, apps=[APP, OTHER_APP])
    a, b = cluster.start(2)
    other = cluster.made[OTHER_APP["id"]]
    mine, theirs = await Client.open(b), await Client.open(b, other)
    await mine.subscribe("private-same", a.pusher())  # the same channel name in two apps
    await theirs.subscribe("private-same", a.pusher(other))
    if broker == REDIS_URL:  # what a stranger (or an older version) could put on the bus
        bus = redis.Redis.from_url(broker)
        for junk in (b"not json", b"[]", b'{"k": "pub", "o": "x"}', b'{"k": "nope", "o": "x", "a": "1"}',
                     json.dumps({"k": "pub", "o": "x", "a": APP["id"], "c": "private-same"}).encode()):
            bus.publish(f"{cluster.prefix}:bus", junk)
    await call(a.pusher().trigger, "private-same", "for-mine", {})
    await call(a.pusher(other).trigger, "private-same", "for-theirs", {})
    await mine.wait_for("for-mine")
    await theirs.wait_for("for-theirs")
    sender = await Client.open(a)
    await sender.subscribe("private-same", a.pusher())
    await sender.send("client-note", {}, "private-same")
    await mine.wait_for("client-note")
    await asyncio.sleep(QUIET)
    def events(client: Client) -> list[str]:
        return [f["event"] for f in client.find(channel="private-same") if not f["event"].startswith("pusher")]

    assert events(mine) == ["for-mine", "client-note"]
    assert events(theirs) == ["for-theirs"]
    await close_all([mine, theirs, sender])
