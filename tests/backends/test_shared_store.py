"""One contract for every SharedStore (vask.cluster.store): RedisStore on the machine's Redis and on a private
Redis Cluster (keys spread over three shards), NatsStore on the machine's NATS JetStream, each test with a
prefix of its own that is removed afterwards, and MemoryStore (vask.cluster.memory), each test with a space
of its own (named after the prefix). A service that cannot be reached skips its half with the reason; the
memory half always runs, so the in-memory store that cluster unit tests use is held to the same contract.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from private_nats import NATS_SERVER, NATS_URL, REDIS_URL, PrivateNats, free_port, reachable
from vask.cluster.memory import MemorySpace, MemoryStore
from vask.cluster.store import SharedStore, StoreUnavailable, decode, update

pytestmark = pytest.mark.asyncio(loop_scope="function")

TTLS = {"nodes": 1.0, "locks": 1.0, "cache": 60.0}  # NATS KV expires to the millisecond; 1 s keeps tests short
Factory = Callable[..., Awaitable[SharedStore]]


def open_store(kind: str, url: str, prefix: str, ttls: dict[str, float]) -> SharedStore:
    if kind == "memory":  # on the real clock, as the engines are
        return MemoryStore(ttls, space=MemorySpace.named(prefix))
    if kind in ("redis", "redis-cluster"):
        from vask.cluster.redis_store import RedisStore

        return RedisStore(url, prefix, ttls)
    from vask.cluster.nats_store import NatsStore

    return NatsStore(url, prefix, ttls)


async def remove_prefix(kind: str, prefix: str) -> None:
    if kind in ("redis-cluster", "memory"):
        return  # a private cluster, gone at the end of the session; a space of the test's own
    if kind == "redis":
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        return
    import nats

    nc = await nats.connect(NATS_URL)
    js = nc.jetstream()
    for name in ("state", *TTLS):
        with contextlib.suppress(Exception):  # a bucket the test never made
            await js.delete_key_value(f"{prefix}_{name}")
    await nc.close()


async def stores_of(kind: str, url: str | None = None) -> AsyncIterator[Factory]:
    """Opens started stores of one kind sharing a fresh prefix (several stores = several nodes); cleans up."""
    if url is None and kind != "memory":
        url = REDIS_URL if kind == "redis" else NATS_URL
        host, port = ("127.0.0.1", 6379) if kind == "redis" else ("127.0.0.1", 4222)
        if not reachable(host, port):
            pytest.skip(f"{kind} is not reachable on {host}:{port}")
    prefix = f"t{uuid.uuid4().hex[:12]}"
    opened: list[SharedStore] = []

    async def factory(ttls: dict[str, float] | None = None) -> SharedStore:
        store = open_store(kind, url or "", prefix, ttls or TTLS)
        await store.start()
        opened.append(store)
        return store

    factory.kind = kind  # type: ignore[attr-defined]
    yield factory
    for store in opened:
        await store.close()
    await remove_prefix(kind, prefix)


@pytest_asyncio.fixture(params=["redis", "redis-cluster", "nats", "memory"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Factory]:
    url = request.getfixturevalue("redis_cluster") if request.param == "redis-cluster" else None
    async for factory in stores_of(request.param, url):
        yield factory


@pytest_asyncio.fixture
async def make_nats() -> AsyncIterator[Factory]:
    async for factory in stores_of("nats"):
        yield factory


@pytest_asyncio.fixture
async def store(make: Factory) -> SharedStore:
    return await make()


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float) -> float:
    """Seconds until ``check`` held; fails the test past ``timeout``."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < timeout, "condition not reached in time"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


# -- compare-and-set documents ---------------------------------------------------------------


async def test_absent_key_reads_as_none_revision_zero(store: SharedStore) -> None:
    assert await store.get("ch.777.nothing") == (None, 0)
    assert await store.get_many(["ch.777.nothing", "epoch"]) == [None, None]


async def test_create_only_when_absent(store: SharedStore) -> None:
    assert await store.put_if("doc", b"one", 0)
    value, revision = await store.get("doc")
    assert (value, revision > 0) == (b"one", True)
    assert not await store.put_if("doc", b"two", 0)
    assert await store.get("doc") == (b"one", revision)


async def test_update_needs_the_current_revision(store: SharedStore) -> None:
    await store.put_if("doc", b"one", 0)
    _, first = await store.get("doc")
    assert await store.put_if("doc", b"two", first)
    value, second = await store.get("doc")
    assert value == b"two" and second != first
    assert not await store.put_if("doc", b"stale", first)
    assert not await store.put_if("doc", b"made up", second + 1000)
    assert await store.get("doc") == (b"two", second)


async def test_delete_needs_the_current_revision(store: SharedStore) -> None:
    await store.put_if("doc", b"one", 0)
    _, first = await store.get("doc")
    await store.put_if("doc", b"two", first)
    _, second = await store.get("doc")
    assert not await store.put_if("doc", None, first)
    assert await store.get("doc") == (b"two", second)
    assert await store.put_if("doc", None, second)
    assert await store.get("doc") == (None, 0)
    assert await store.get_many(["doc"]) == [None]
    assert await store.keys("do") == []


async def test_delete_if_absent(store: SharedStore) -> None:
    assert await store.put_if("doc", None, 0)  # nothing there: "delete if absent" holds and changes nothing
    await store.put_if("doc", b"one", 0)
    assert not await store.put_if("doc", None, 0)
    assert (await store.get("doc"))[0] == b"one"


async def test_recreated_key_never_reuses_a_revision(store: SharedStore) -> None:
    """A writer holding the revision of a document that was deleted and created again must lose (no ABA)."""
    await store.put_if("doc", b"old", 0)
    _, stale = await store.get("doc")
    assert await store.put_if("doc", None, stale)
    assert await store.put_if("doc", b"new", 0)
    _, fresh = await store.get("doc")
    assert fresh != stale
    assert not await store.put_if("doc", b"from the stale reader", stale)
    assert not await store.put_if("doc", None, stale)
    assert (await store.get("doc"))[0] == b"new"


async def test_an_empty_expiring_value_is_a_value(store: SharedStore) -> None:
    # (Documents are never empty: they are JSON objects; RedisStore would even read b"" as a delete.)
    await store.put_expiring("nodes", "n", b"")  # a node without a region label
    assert await store.get_expiring("nodes", "n") == b""


async def test_get_many_keeps_the_order_and_the_gaps(store: SharedStore) -> None:
    for key in ("a.1", "a.2", "a.3"):
        await store.put_if(key, key.encode(), 0)
    assert await store.get_many(["a.3", "missing", "a.1", "a.2"]) == [b"a.3", None, b"a.1", b"a.2"]
    assert await store.get_many([]) == []


async def test_keys_by_prefix(store: SharedStore) -> None:
    wanted = ["ch.777.Y2hhbm5lbA", "ch.777.cHJpdmF0ZS14", "ch.7770.b3RoZXI", "nk.bm9kZS0x", "epoch", "ac.x"]
    for key in wanted:
        await store.put_if(key, b"{}", 0)
    assert sorted(await store.keys("ch.777.")) == ["ch.777.Y2hhbm5lbA", "ch.777.cHJpdmF0ZS14"]
    assert sorted(await store.keys("ch.777")) == sorted(["ch.777.Y2hhbm5lbA", "ch.777.cHJpdmF0ZS14", "ch.7770.b3RoZXI"])
    assert await store.keys("nk.") == ["nk.bm9kZS0x"]
    assert await store.keys("ep") == ["epoch"]
    assert sorted(await store.keys("")) == sorted(wanted)
    assert await store.keys("zz.") == []


async def test_keys_with_awkward_characters(store: SharedStore) -> None:
    """App and node ids may hold dots, dashes and underscores; nothing may break a key, wildcards included."""
    awkward = ["ch.my.app-1_x.abc", "nk.host.example.com-12-ab", "odd..empty.", "odd.é >*=.x"]
    for key in awkward:
        assert await store.put_if(key, key.encode(), 0)
    assert await store.get_many(awkward) == [key.encode() for key in awkward]
    assert sorted(await store.keys("odd.")) == sorted(awkward[2:])
    assert await store.keys("ch.my.") == ["ch.my.app-1_x.abc"]
    _, revision = await store.get("odd.é >*=.x")
    assert await store.put_if("odd.é >*=.x", None, revision)
    assert await store.keys("odd.") == ["odd..empty."]


async def test_update_helper_under_concurrent_writers(make: Factory) -> None:
    """Ten writers on three connections (three "nodes") each add 1 twenty times: no increment is lost."""
    stores = [await make() for _ in range(3)]

    def increment(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        return {"n": (doc or {}).get("n", 0) + 1}

    async def writer(store: SharedStore) -> None:
        for _ in range(20):
            await update(store, "counter", increment)

    await asyncio.gather(*(writer(stores[i % 3]) for i in range(10)))
    raw, _ = await stores[0].get("counter")
    assert decode(raw) == {"n": 200}


async def test_update_helper_reports_before_and_after_and_deletes(store: SharedStore) -> None:
    assert await update(store, "doc", lambda doc: {"x": 1}) == (None, {"x": 1})
    assert await update(store, "doc", lambda doc: None) == ({"x": 1}, None)
    assert await store.get("doc") == (None, 0)
    assert await update(store, "doc", lambda doc: {"x": 2}) == (None, {"x": 2})


# -- expiring buckets ------------------------------------------------------------------------


async def test_expiring_entries_expire_by_bucket_ttl(store: SharedStore) -> None:
    await store.put_expiring("nodes", "node-a", b"eu")
    await store.put_expiring("cache", "ch.777.eA", b"cached")
    assert await store.get_expiring("nodes", "node-a") == b"eu"
    assert await store.keys_expiring("nodes") == ["node-a"]

    async def gone() -> bool:
        return await store.get_expiring("nodes", "node-a") is None

    waited = await wait_until(gone, 3.0)
    assert 0.5 < waited < 2.5, f"a 1 s entry lasted {waited:.2f} s"
    assert await store.keys_expiring("nodes") == []
    assert await store.get_expiring("cache", "ch.777.eA") == b"cached"  # another bucket, another TTL


async def test_writing_again_renews_an_expiring_entry(store: SharedStore) -> None:
    await store.put_expiring("nodes", "node-a", b"1")
    for _ in range(4):
        await asyncio.sleep(0.4)
        await store.put_expiring("nodes", "node-a", b"2")
    assert await store.get_expiring("nodes", "node-a") == b"2"  # 1.6 s after the first write


async def test_expiring_keys_and_delete(store: SharedStore) -> None:
    for node in ("node-a", "node.b", "node_c"):
        await store.put_expiring("nodes", node, b"")
    assert sorted(await store.keys_expiring("nodes")) == ["node-a", "node.b", "node_c"]
    assert await store.keys_expiring("locks") == []
    await store.delete_expiring("nodes", "node.b")
    await store.delete_expiring("nodes", "never-there")
    assert sorted(await store.keys_expiring("nodes")) == ["node-a", "node_c"]
    assert await store.get_expiring("nodes", "node.b") is None
    assert await store.get_expiring("nodes", "") is None


async def test_create_expiring_is_exclusive(make: Factory) -> None:
    one, two = await make(), await make()
    results = await asyncio.gather(*(s.create_expiring("locks", "dead-node", b"1" if s is one else b"2")
                                     for s in (one, two, one, two)))
    assert sorted(results) == [False, False, False, True]
    holder = await one.get_expiring("locks", "dead-node")
    assert holder in (b"1", b"2")
    await one.delete_expiring("locks", "dead-node")
    assert await two.create_expiring("locks", "dead-node", b"2")  # free again once deleted
    assert not await one.create_expiring("locks", "dead-node", b"1")

    async def expired() -> bool:
        return await one.create_expiring("locks", "dead-node", b"1")

    await wait_until(expired, 3.0)  # and once it expired
    assert await two.get_expiring("locks", "dead-node") == b"1"


# -- unreachable ---------------------------------------------------------------------------


async def test_unreachable_store_fails_fast(make: Factory) -> None:
    """Pointed at a closed port: start() returns and every call raises StoreUnavailable within seconds."""
    kind = make.kind  # type: ignore[attr-defined]
    url = {"redis": f"redis://127.0.0.1:{free_port()}/0", "redis-cluster": f"redis+cluster://127.0.0.1:{free_port()}",
           "nats": f"nats://127.0.0.1:{free_port()}", "memory": ""}[kind]
    prefix = "unreachable" if kind != "memory" else f"t{uuid.uuid4().hex[:12]}"
    if kind == "memory":
        MemorySpace.named(prefix).go_down()  # the memory store's "closed port"
    store = open_store(kind, url, prefix, TTLS)
    start = time.monotonic()
    await store.start()
    try:
        calls: list[Awaitable[Any]] = [store.get("doc"), store.put_if("doc", b"x", 0), store.keys("ch."),
                                       store.get_many(["a"]), store.put_expiring("nodes", "n", b""),
                                       store.create_expiring("locks", "n", b""), store.keys_expiring("nodes")]
        for call in calls:
            with pytest.raises(StoreUnavailable):
                await call
        assert time.monotonic() - start < 8
    finally:
        await store.close()


# -- NATS only: buckets ----------------------------------------------------------------------


async def test_nats_bucket_with_another_ttl_is_updated(make_nats: Factory) -> None:
    first = await make_nats({"nodes": 30.0, "locks": 30.0, "cache": 60.0})
    await first.put_if("doc", b"kept", 0)
    second = await make_nats(TTLS)  # same prefix, shorter node timeout
    assert (await second.get("doc"))[0] == b"kept"
    await second.put_expiring("nodes", "n", b"")

    async def gone() -> bool:
        return await second.get_expiring("nodes", "n") is None

    await wait_until(gone, 3.0)


async def test_nats_buckets_come_back_after_the_server_lost_them(make_nats: Factory) -> None:
    import nats

    store = await make_nats()
    prefix = store.prefix  # type: ignore[attr-defined]
    await store.put_if("doc", b"one", 0)
    nc = await nats.connect(NATS_URL)
    for name in ("state", *TTLS):
        await nc.jetstream().delete_key_value(f"{prefix}_{name}")
    await nc.close()
    with pytest.raises(StoreUnavailable):
        await store.put_if("doc", b"two", 0)

    async def writable() -> bool:
        try:
            return await store.put_if("doc", b"two", 0)
        except StoreUnavailable:
            return False

    await wait_until(writable, 5.0)
    await store.put_expiring("nodes", "n", b"")
    assert await store.keys_expiring("nodes") == ["n"]


@pytest.mark.skipif(not Path(NATS_SERVER).exists(), reason="nats-server is not installed")
@pytest.mark.parametrize("keep_data", [True, False], ids=["same-storage", "storage-lost"])
async def test_nats_server_restart(tmp_path: Path, keep_data: bool) -> None:
    """Calls fail fast while the server is down and work again once it is back: with its storage the
    documents are still there; without it the buckets are created again (empty: the hub's epoch check then
    makes every node re-publish its state)."""
    from vask.cluster.nats_store import NatsStore

    server = PrivateNats(tmp_path / "js")
    server.start()
    store = NatsStore(server.url, "restart", TTLS)
    try:
        await store.start()
        assert await store.put_if("doc", b"one", 0)
        server.stop()
        await asyncio.sleep(0.2)
        start = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await store.get("doc")
        assert time.monotonic() - start < 2.5
        if not keep_data:
            server.workdir = tmp_path / "empty"
        server.start()
        expected = b"one" if keep_data else None

        async def back() -> bool:
            try:
                return (await store.get("doc"))[0] == expected and await store.keys_expiring("nodes") == []
            except StoreUnavailable:
                return False

        await wait_until(back, 10.0)
        _, revision = await store.get("doc")
        assert await store.put_if("doc", b"two", revision)
        await store.put_expiring("nodes", "n", b"")
        assert await store.get_expiring("nodes", "n") == b""
    finally:
        await store.close()
        server.stop()


# -- memory only: the simulated engine -----------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def started_memory(space: MemorySpace | None = None, ttls: dict[str, float] | None = None,
                         clock: Callable[[], float] = time.monotonic) -> MemoryStore:
    store = MemoryStore(TTLS if ttls is None else ttls, clock=clock, space=space)
    await store.start()
    return store


async def every_call_fails(store: SharedStore) -> None:
    for call in [store.get("doc"), store.get_many(["doc"]), store.put_if("doc", b"x", 0), store.keys(""),
                 store.put_expiring("nodes", "n", b""), store.get_expiring("nodes", "n"),
                 store.delete_expiring("nodes", "n"), store.keys_expiring("nodes"),
                 store.create_expiring("locks", "n", b"")]:
        with pytest.raises(StoreUnavailable):
            await call


async def test_memory_outage_fails_every_store_of_the_space_fast_and_keeps_the_data() -> None:
    clock, space = FakeClock(), MemorySpace()
    one, two = await started_memory(space, clock=clock), await started_memory(space, clock=clock)
    assert await one.put_if("doc", b"one", 0)
    _, revision = await one.get("doc")
    await one.put_expiring("nodes", "n", b"eu")
    await one.put_expiring("cache", "c", b"")
    space.go_down()
    start = time.monotonic()
    await every_call_fails(one)
    await every_call_fails(two)
    assert time.monotonic() - start < 0.1  # no timeout to wait for
    clock.now += TTLS["nodes"]  # entries keep expiring meanwhile
    space.come_back()
    assert await two.get("doc") == (b"one", revision)
    assert await two.keys_expiring("nodes") == [] and await two.keys_expiring("cache") == ["c"]
    assert await two.put_if("doc", b"two", revision)


async def test_memory_data_loss_forgets_everything_and_never_reuses_a_revision() -> None:
    space = MemorySpace()
    store = await started_memory(space)
    await store.put_if("doc", b"old", 0)
    _, stale = await store.get("doc")
    await store.create_expiring("locks", "l", b"")
    space.go_down()
    space.lose_data()  # a restart without persistence, during an outage
    space.come_back()
    assert await store.get("doc") == (None, 0) and await store.keys("") == []
    assert await store.create_expiring("locks", "l", b"again")  # the lock went with the data
    assert await store.put_if("doc", b"new", 0)
    _, fresh = await store.get("doc")
    assert fresh != stale and not await store.put_if("doc", b"stale writer", stale)


async def test_memory_expiry_follows_the_injected_clock() -> None:
    clock = FakeClock()  # (steps exact in binary, so "at the deadline" is exact)
    store = await started_memory(ttls={"nodes": 5.0, "locks": 9.5, "cache": 60.0}, clock=clock)
    await store.put_expiring("nodes", "a", b"1")
    await store.put_expiring("cache", "c", b"cached")
    assert await store.create_expiring("locks", "dead", b"me")
    clock.now += 4.5
    assert await store.keys_expiring("nodes") == ["a"]
    await store.put_expiring("nodes", "a", b"2")  # renewed: 5 s from now
    clock.now += 4.5
    assert await store.get_expiring("nodes", "a") == b"2"
    assert not await store.create_expiring("locks", "dead", b"other")
    clock.now += 0.5  # 5 s after the renewal, 9.5 s after the lock: both gone, exactly at the deadline
    assert await store.get_expiring("nodes", "a") is None and await store.keys_expiring("nodes") == []
    assert await store.create_expiring("locks", "dead", b"other")
    assert await store.get_expiring("cache", "c") == b"cached"
    with pytest.raises(KeyError):  # a bucket without a TTL is a programming error, not an outage
        await store.put_expiring("elsewhere", "n", b"")


async def test_memory_spaces_lifecycle_and_defaults() -> None:
    name = f"t{uuid.uuid4().hex[:12]}"
    assert MemorySpace.named(name) is MemorySpace.named(name) is not MemorySpace.named(name + "x")
    store = MemoryStore(space=MemorySpace.named(name))
    assert store.ttls == {"nodes": 30.0, "locks": 30.0, "cache": 1800.0}  # what vask.factory uses by default
    await every_call_fails(store)  # not started yet
    await store.start()
    assert await store.put_if("doc", b"x", 0)
    await store.close()
    await every_call_fails(store)
    assert (await (await started_memory(MemorySpace.named(name))).get("doc"))[0] == b"x"  # the space kept it
    assert await (await started_memory()).get("doc") == (None, 0)  # a store of its own: a space of its own


async def test_memory_calls_yield_to_the_loop_then_act_atomically() -> None:
    """Each call lets other tasks run once before it acts: two nodes racing to update see one winner."""
    space = MemorySpace()
    one, two = await started_memory(space), await started_memory(space)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    task = asyncio.create_task(other())
    await one.get("doc")
    assert ran == ["other"]
    await task
    (_, rev_one), (_, rev_two) = await asyncio.gather(one.get("doc"), two.get("doc"))
    assert sorted(await asyncio.gather(one.put_if("doc", b"1", rev_one), two.put_if("doc", b"2", rev_two))) == \
        [False, True]
