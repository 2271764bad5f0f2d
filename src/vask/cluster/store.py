"""The shared store: small JSON documents updated with compare-and-set, plus keys that expire.

Cluster state lives in documents (vask.cluster.documents) where each node writes only its own field (its
local counts), so every update is an idempotent absolute set and a node can re-publish its whole state after
the store restarts. Transitions (first subscriber, last member) are read off the document before and after
one atomic update, so exactly one node sees each transition. Redis, NATS JetStream KV and an in-memory store
(vask.cluster.memory, for tests) implement this interface.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import orjson

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The shared store cannot be reached; callers fail fast and resynchronise when it returns."""


class SharedStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def get(self, key: str) -> tuple[bytes | None, int]:
        """The value and its revision; (None, 0) when absent."""

    async def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    async def put_if(self, key: str, value: bytes | None, revision: int) -> bool:
        """Write (or delete, for None) only if the revision is still ``revision`` (0: only if absent).

        A key deleted and written again gets a revision it never had before, so a stale ``revision`` fails."""

    async def keys(self, prefix: str) -> list[str]:
        """Keys starting with ``prefix`` (incrementally scanned; never a blocking KEYS)."""

    async def put_expiring(self, bucket: str, key: str, value: bytes) -> None:
        """Write to a bucket whose entries expire (heartbeats, cache channels); TTLs are set per bucket."""

    async def get_expiring(self, bucket: str, key: str) -> bytes | None: ...

    async def delete_expiring(self, bucket: str, key: str) -> None: ...

    async def keys_expiring(self, bucket: str) -> list[str]: ...

    async def create_expiring(self, bucket: str, key: str, value: bytes) -> bool:
        """Write only if absent (a lock); False when someone holds it."""


def segment(text: str) -> str:
    """A key segment safe for Redis and NATS subjects alike (channel names may hold @ , ; #)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def unsegment(part: str) -> str:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()


def decode(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    doc: dict[str, Any] = orjson.loads(raw)
    return doc


async def update(store: SharedStore, key: str,
                 change: Callable[[dict[str, Any] | None], dict[str, Any] | None],
                 attempts: int = 100) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Apply ``change`` to the JSON document at ``key`` atomically; return the document before and after.
    (The cluster's own documents are typed: vask.cluster.documents.update.)"""
    return await update_with(store, key, change, decode, orjson.dumps, attempts)


async def update_with(store: SharedStore, key: str, change: Callable[[T | None], T | None],
                      read: Callable[[bytes | None], T | None], write: Callable[[T], bytes],
                      attempts: int = 100) -> tuple[T | None, T | None]:
    """Apply ``change`` atomically (retrying on conflict); return the document before and after."""
    for attempt in range(attempts):
        raw, revision = await store.get(key)
        before = read(raw)
        after = change(before)
        if after == before:
            return before, after
        if await store.put_if(key, None if after is None else write(after), revision):
            return before, after
        # Lost the race: wait a random moment (growing, at most 20 ms) so that retrying writers spread out
        # instead of colliding in lockstep, where one of them could lose every round and run out of attempts.
        await asyncio.sleep(random.random() * min(0.001 * (attempt + 1), 0.02))
    raise StoreUnavailable(f"too much contention on {key}")
