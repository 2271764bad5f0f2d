"""SharedStore in process memory, for unit tests of cluster logic: no Redis or NATS needed.

Several ``MemoryStore`` objects sharing one ``MemorySpace`` are several nodes on one store engine. The space
also plays the engine's failures: ``go_down``/``come_back`` (every call fails fast with StoreUnavailable in
between) and ``lose_data`` (a restart without persistence). Everything is deterministic: expiry follows the
injected clock, and each call yields to the event loop exactly once before it acts, atomically, so coroutines
interleave the way they would around a network round trip without any real waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ClassVar

from vask.cluster.store import StoreUnavailable

# What vask.factory gives a cluster node with the default node timeout (30 s).
DEFAULT_TTLS = {"nodes": 30.0, "locks": 30.0, "cache": 30 * 60.0}


class MemorySpace:
    """The data one store engine holds, shared by every MemoryStore opened on it.

    Revisions come from one counter for the space's whole life and are never handed out twice, not even
    after ``lose_data``: a writer holding a revision from before can never match a key created since. (A
    JetStream stream sequence is the same except there: a NATS server that lost its storage starts again
    at 1, and RedisStore starts each new key at a random revision.)

    Expiring entries carry their deadline on the clock of the store that wrote them, with that store's TTL
    for the bucket (as with Redis, where each writer sets the TTL), so stores sharing a space should share
    one clock.
    """

    _named: ClassVar[dict[str, MemorySpace]] = {}

    def __init__(self) -> None:
        self.documents: dict[str, tuple[bytes, int]] = {}  # key → (value, revision)
        self.expiring: dict[str, dict[str, tuple[bytes, float]]] = {}  # bucket → key → (value, deadline)
        self.last_revision = 0
        self.available = True

    @classmethod
    def named(cls, name: str) -> MemorySpace:
        """The process-wide space called ``name`` (made on first use), the store's side of ``memory://<name>``;
        it lives as long as the process, so only nodes in one process can share it."""
        space = cls._named.get(name)
        if space is None:
            space = cls._named[name] = cls()
        return space

    def go_down(self) -> None:
        """Unreachable from now on: every call on every store of this space raises StoreUnavailable."""
        self.available = False

    def come_back(self) -> None:
        """Reachable again, with whatever data it kept (all of it, unless ``lose_data`` was called)."""
        self.available = True

    def lose_data(self) -> None:
        """Forget every document and expiring entry, as a store restarted without persistence does.

        Only the data goes; availability is unchanged, so a test can lose data during an outage or not."""
        self.documents.clear()
        self.expiring.clear()

    def next_revision(self) -> int:
        self.last_revision += 1
        return self.last_revision


class MemoryStore:
    """A SharedStore on a MemorySpace (a fresh one of its own unless ``space`` is given).

    Guarantees, as for the real stores: ``put_if`` is an atomic compare-and-set (revision 0: only if absent;
    value None: delete); a key deleted and created again never gets a revision it had before; expiring
    entries are gone once their bucket's TTL has passed on ``clock`` since the last write (at exactly the
    deadline included); ``create_expiring`` succeeds for one caller only until the entry is deleted or
    expires. A bucket missing from ``ttls`` is a programming error (KeyError), not an outage. Calls before
    ``start`` or after ``close`` raise StoreUnavailable, as a store without a connection does.
    """

    def __init__(self, ttls: dict[str, float] | None = None, clock: Callable[[], float] = time.monotonic,
                 space: MemorySpace | None = None) -> None:
        self.ttls = dict(DEFAULT_TTLS if ttls is None else ttls)  # bucket → seconds
        self.clock = clock
        self.space = MemorySpace() if space is None else space
        self.started = False
        self.closed = False

    async def start(self) -> None:
        self.started = True
        self.closed = False

    async def close(self) -> None:
        self.closed = True

    async def _reach(self) -> MemorySpace:
        """The round trip: yield once, then fail fast if the space (or this store) cannot be reached.

        Nothing awaits after this returns, so what the caller does next is atomic, as a server-side
        operation is."""
        await asyncio.sleep(0)
        if not self.started or self.closed:
            raise StoreUnavailable("memory store not started" if not self.closed else "memory store closed")
        if not self.space.available:
            raise StoreUnavailable("memory store unavailable (simulated outage)")
        return self.space

    # -- documents -----------------------------------------------------------------------------

    async def get(self, key: str) -> tuple[bytes | None, int]:
        space = await self._reach()
        return space.documents.get(key, (None, 0))

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        space = await self._reach()
        return [entry[0] if (entry := space.documents.get(key)) is not None else None for key in keys]

    async def put_if(self, key: str, value: bytes | None, revision: int) -> bool:
        space = await self._reach()
        current = space.documents.get(key)
        if (current[1] if current is not None else 0) != revision:
            return False
        if value is None:
            space.documents.pop(key, None)  # (revision 0 and absent: "delete if absent" holds, changes nothing)
        else:
            space.documents[key] = (value, space.next_revision())
        return True

    async def keys(self, prefix: str) -> list[str]:
        space = await self._reach()
        return sorted(key for key in space.documents if key.startswith(prefix))

    # -- expiring buckets ----------------------------------------------------------------------

    def _live(self, space: MemorySpace, bucket: str) -> dict[str, tuple[bytes, float]]:
        """The bucket's entries, the expired ones dropped first (as the engines do, lazily or not)."""
        if bucket not in self.ttls:
            raise KeyError(f"no TTL configured for the expiring bucket {bucket!r}")
        entries = space.expiring.setdefault(bucket, {})
        now = self.clock()
        for key in [key for key, (_, deadline) in entries.items() if deadline <= now]:
            del entries[key]
        return entries

    async def put_expiring(self, bucket: str, key: str, value: bytes) -> None:
        space = await self._reach()
        self._live(space, bucket)[key] = (value, self.clock() + self.ttls[bucket])

    async def create_expiring(self, bucket: str, key: str, value: bytes) -> bool:
        space = await self._reach()
        entries = self._live(space, bucket)
        if key in entries:
            return False
        entries[key] = (value, self.clock() + self.ttls[bucket])
        return True

    async def get_expiring(self, bucket: str, key: str) -> bytes | None:
        space = await self._reach()
        entry = self._live(space, bucket).get(key)
        return None if entry is None else entry[0]

    async def delete_expiring(self, bucket: str, key: str) -> None:
        space = await self._reach()
        self._live(space, bucket).pop(key, None)

    async def keys_expiring(self, bucket: str) -> list[str]:
        space = await self._reach()
        return sorted(self._live(space, bucket))
