"""The shared store: small JSON documents updated with compare-and-set, plus keys that expire.

Cluster state lives in documents where each node writes only its own field (its local counts), so every
update is an idempotent absolute set and a node can re-publish its whole state after the store restarts.
Transitions (first subscriber, last member) are read off the document before and after one atomic update,
so exactly one node sees each transition. Redis and NATS JetStream KV both implement this interface.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson


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
    """Apply ``change`` atomically (retrying on conflict); return the document before and after."""
    for attempt in range(attempts):
        raw, revision = await store.get(key)
        before = decode(raw)
        after = change(decode(raw))
        if after == before:
            return before, after
        if await store.put_if(key, None if after is None else orjson.dumps(after), revision):
            return before, after
        # Lost the race: wait a random moment (growing, at most 20 ms) so that retrying writers spread out
        # instead of colliding in lockstep, where one of them could lose every round and run out of attempts.
        await asyncio.sleep(random.random() * min(0.001 * (attempt + 1), 0.02))
    raise StoreUnavailable(f"too much contention on {key}")


def node_counts(doc: dict[str, Any] | None) -> dict[str, int]:
    return dict(doc.get("n", {})) if doc else {}


def total(doc: dict[str, Any] | None) -> int:
    return sum(node_counts(doc).values())


def version(doc: dict[str, Any] | None) -> int:
    """The count document's version: subscription_count frames carry it, so that a node never shows an older
    count after a newer one when announcements from several nodes arrive out of order."""
    return int(doc.get("s", 0)) if doc else 0


def with_counts(doc: dict[str, Any] | None, counts: dict[str, int]) -> dict[str, Any] | None:
    """The {"n": {node: count}, "s": version} document after ``doc`` with ``counts`` (None when all are gone).

    The version grows with every change. It starts from the clock (ms) rather than 1, so a document deleted
    and created again still outranks the old one's announcements that may be in flight.
    """
    if not counts:
        return None
    if doc is not None and node_counts(doc) == counts:
        return doc
    return {"n": counts, "s": max(version(doc) + 1, int(time.time() * 1000))}


def set_node_count(node: str, count: int) -> Callable[[dict[str, Any] | None], dict[str, Any] | None]:
    """A change that sets this node's count in an {"n": {node: count}} document (deleting it at zero)."""

    def change(doc: dict[str, Any] | None) -> dict[str, Any] | None:
        counts = node_counts(doc)
        if count > 0:
            counts[node] = count
        else:
            counts.pop(node, None)
        return with_counts(doc, counts)

    return change
