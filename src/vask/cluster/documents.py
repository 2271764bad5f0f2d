"""The documents of the shared store, as typed records with a format version.

Each node writes only its own entries with absolute values from its local state, so a change can be retried,
repeated after a store restart, or undone for a dead node without knowing what happened before. On the wire
a document is compact JSON with ``v`` (the format version); a document without ``v`` was written by a node
older than the field and has version 1's form. A document of another version, or one that is not of its
key's kind, is refused: ``UnreadableDocument`` (a StoreUnavailable, so the caller retries later and /ready
says so) and one log line per key — never an exception that stops a loop, and never overwritten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, Self, TypeVar

import orjson

from vask.cluster.store import SharedStore, StoreUnavailable, update_with

log = logging.getLogger("vask.cluster")

VERSION = 1


class UnreadableDocument(StoreUnavailable):
    """A document this node cannot read (another format version, or damaged)."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Connections or subscribers per node (only nodes with at least one). ``seq`` grows with every change
    and starts from the clock (ms), so a document deleted and made again outranks the old one's
    announcements still in flight: subscription_count frames carry it and a later one wins."""
    nodes: Mapping[str, int]
    seq: int = 0

    @property
    def total(self) -> int:
        return sum(self.nodes.values())

    def to_json(self) -> dict[str, Any]:
        return {"n": dict(self.nodes), "s": self.seq}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Self:
        nodes = obj.get("n", {})
        if not isinstance(nodes, dict) or not all(isinstance(n, int) for n in nodes.values()):
            raise ValueError("n must map nodes to counts")
        return cls(nodes, int(obj.get("s", 0)))


@dataclass(frozen=True, slots=True)
class Member:
    nodes: Mapping[str, int]  # node → this user's connections there
    info: Any = None


@dataclass(frozen=True, slots=True)
class Presence:
    members: Mapping[str, Member] = field(default_factory=dict)

    def infos(self) -> dict[str, Any]:
        """user id → user info of every member with a connection on some node."""
        return {uid: m.info for uid, m in self.members.items()}

    def to_json(self) -> dict[str, Any]:
        return {"m": {uid: {"n": dict(m.nodes), "i": m.info} for uid, m in self.members.items()}}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Self:
        table = obj.get("m", {})
        if not isinstance(table, dict):
            raise ValueError("m must map users to entries")
        return cls({uid: Member(dict(e.get("n", {})), e.get("i")) for uid, e in table.items()})


@dataclass(frozen=True, slots=True)
class Registry:
    """The keys a node has entries in: what the clean-up undoes when it dies."""
    keys: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"keys": list(self.keys)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Self:
        return cls(tuple(str(k) for k in obj.get("keys", [])))


@dataclass(frozen=True, slots=True)
class Marker:
    """A held channel_vacated (``user_id`` None) or member_removed (vask.cluster.debounce)."""
    at: float  # wall-clock time it was written
    token: str
    app_id: str
    channel: str
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class Markers:
    held: Mapping[str, Marker] = field(default_factory=dict)  # node → its marker

    def to_json(self) -> dict[str, Any]:
        return {"d": {n: {"t": m.at, "tok": m.token, "a": m.app_id, "c": m.channel, "u": m.user_id}
                      for n, m in self.held.items()}}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Self:
        return cls({n: Marker(float(e["t"]), str(e["tok"]), str(e["a"]), str(e["c"]), e.get("u"))
                    for n, e in obj.get("d", {}).items()})


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A cache channel's last event, kept in the store's expiring bucket for nodes that start later."""
    event: str
    data: str
    expires: float  # wall-clock time
    event_id: str

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "data": self.data, "exp": self.expires, "id": self.event_id}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Self:
        return cls(str(obj["event"]), str(obj["data"]), float(obj["exp"]), str(obj["id"]))


@dataclass(frozen=True, slots=True)
class Epoch:
    """The store's identity: a new one means it lost its data (a restart without persistence)."""
    id: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Self:
        return cls(str(obj["id"]))


class Document(Protocol):
    def to_json(self) -> dict[str, Any]: ...


D = TypeVar("D", Counts, Presence, Registry, Markers, CacheEntry, Epoch)
_reported: set[str] = set()


def load(kind: type[D], raw: bytes | None, key: str = "?") -> D | None:
    if raw is None:
        return None
    try:
        obj = orjson.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        version = obj.get("v", VERSION)
        if version != VERSION:
            problem = f"format version {version!r} (this node reads {VERSION}): run one Vask version"
        else:
            return kind.from_json(obj)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        problem = f"not a {kind.__name__} document ({exc})"
    if len(_reported) > 1000:  # bounded: many damaged keys must not grow memory
        _reported.clear()
    if key not in _reported:
        _reported.add(key)
        log.warning("cannot read the shared document %s: %s; leaving it as it is", key, problem)
    raise UnreadableDocument(f"{key}: {problem}")


def dump(doc: Document) -> bytes:
    return orjson.dumps({"v": VERSION, **doc.to_json()})


async def get(store: SharedStore, kind: type[D], key: str) -> D | None:
    raw, _ = await store.get(key)
    return load(kind, raw, key)


async def update(store: SharedStore, key: str, kind: type[D], change: Callable[[D | None], D | None],
                 attempts: int = 100) -> tuple[D | None, D | None]:
    """Apply ``change`` atomically (retrying on conflict); return the document before and after."""
    return await update_with(store, key, change, lambda raw: load(kind, raw, key), dump, attempts)


# -- changes: pure functions from the document before to the document after -----------------------------------

def with_counts(doc: Counts | None, counts: dict[str, int]) -> Counts | None:
    """``doc`` with ``counts`` (None when all are gone), the version raised when anything changed."""
    if not counts:
        return None
    if doc is not None and dict(doc.nodes) == counts:
        return doc
    return Counts(counts, max((doc.seq if doc else 0) + 1, int(time.time() * 1000)))


def set_node_count(node: str, count: int) -> Callable[[Counts | None], Counts | None]:
    def change(doc: Counts | None) -> Counts | None:
        counts = dict(doc.nodes) if doc else {}
        if count > 0:
            counts[node] = count
        else:
            counts.pop(node, None)
        return with_counts(doc, counts)

    return change


def set_presence(node: str, local: dict[str, tuple[int, Any]], limit: int,
                 refused: set[str]) -> Callable[[Presence | None], Presence | None]:
    """Make this node's presence entries equal ``local`` (user → (connections, info)).

    A user new to the channel is refused (added to ``refused``) when the channel already has ``limit``
    members cluster-wide."""

    def change(doc: Presence | None) -> Presence | None:
        refused.clear()
        table = {uid: (dict(m.nodes), m.info) for uid, m in (doc.members if doc else {}).items()}
        for nodes, _ in table.values():
            nodes.pop(node, None)
        for uid, (count, info) in local.items():
            entry = table.get(uid)
            if entry is None or not entry[0]:
                if sum(1 for nodes, _ in table.values() if nodes) >= limit:
                    refused.add(uid)
                    continue
                entry = ({}, info)
            entry[0][node] = count
            table[uid] = (entry[0], info)  # the latest join's info wins, as on Pusher
        members = {uid: Member(nodes, info) for uid, (nodes, info) in table.items() if nodes}
        return Presence(members) if members else None

    return change


def drop_node_counts(node: str) -> Callable[[Counts | None], Counts | None]:
    def change(doc: Counts | None) -> Counts | None:
        if doc is None:
            return None
        return with_counts(doc, {k: v for k, v in doc.nodes.items() if k != node})

    return change


def drop_node_members(node: str) -> Callable[[Presence | None], Presence | None]:
    def change(doc: Presence | None) -> Presence | None:
        if doc is None:
            return None
        members = {uid: Member({k: v for k, v in m.nodes.items() if k != node}, m.info)
                   for uid, m in doc.members.items()}
        members = {uid: m for uid, m in members.items() if m.nodes}
        return Presence(members) if members else None

    return change


def register(key: str) -> Callable[[Registry | None], Registry | None]:
    def change(doc: Registry | None) -> Registry | None:
        keys = doc.keys if doc else ()
        return doc if key in keys else Registry((*keys, key))

    return change


def unregister(key: str) -> Callable[[Registry | None], Registry | None]:
    def change(doc: Registry | None) -> Registry | None:
        keys = tuple(k for k in (doc.keys if doc else ()) if k != key)
        return Registry(keys) if keys else None

    return change
