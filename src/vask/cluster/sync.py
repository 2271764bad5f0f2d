"""Pure document changes for the shared cluster state, and what each before/after pair means.

Each node writes only its own entries, with absolute values taken from its local state, so a change can be
retried, repeated after a store restart, or undone for a dead node without knowing what happened before.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any, NamedTuple

from vask.cluster.store import segment, with_counts

Doc = dict[str, Any] | None
Change = Callable[[Doc], Doc]


class Kind(StrEnum):
    """What a shared document counts; its value is the key's first segment."""
    CONNECTIONS = "cn"  # an app's connections per node
    ACCOUNT = "ac"  # an account's connections per node (billing quotas)
    CHANNEL = "ch"  # a channel's subscribers per node
    PRESENCE = "pr"  # a presence channel's members per node
    USER = "us"  # a signed-in user's connections per node


class Dirty(NamedTuple):
    """A document this node must rewrite from its local state; ``owner`` is the app (the account for ACCOUNT)."""
    kind: Kind
    owner: str
    name: str = ""

    def key(self) -> str:
        if self.kind is Kind.CONNECTIONS:
            return connections_key(self.owner)
        if self.kind is Kind.ACCOUNT:
            return account_key(self.owner)
        if self.kind is Kind.CHANNEL:
            return channel_key(self.owner, self.name)
        if self.kind is Kind.PRESENCE:
            return presence_key(self.owner, self.name)
        return user_key(self.owner, self.name)


def channel_key(app_id: str, channel: str) -> str:
    return f"ch.{segment(app_id)}.{segment(channel)}"


def presence_key(app_id: str, channel: str) -> str:
    return f"pr.{segment(app_id)}.{segment(channel)}"


def user_key(app_id: str, user_id: str) -> str:
    return f"us.{segment(app_id)}.{segment(user_id)}"


def connections_key(app_id: str) -> str:
    return f"cn.{segment(app_id)}"


def account_key(account: str) -> str:
    return f"ac.{segment(account)}"


def registry_key(node: str) -> str:
    return f"nk.{segment(node)}"


def members(doc: Doc) -> dict[str, Any]:
    """user id → user info of every member with at least one connection on some node."""
    return {uid: entry.get("i") for uid, entry in (doc or {}).get("m", {}).items()}


def set_presence(node: str, local: dict[str, tuple[int, Any]], limit: int,
                 refused: set[str]) -> Change:
    """Make this node's presence entries equal ``local`` (user → (connections, info)).

    A user new to the channel is refused (added to ``refused``) when the channel already has ``limit``
    members cluster-wide.
    """

    def change(doc: Doc) -> Doc:
        refused.clear()
        table: dict[str, Any] = {uid: {"n": dict(e.get("n", {})), "i": e.get("i")}
                                 for uid, e in (doc or {}).get("m", {}).items()}
        for entry in table.values():
            entry["n"].pop(node, None)
        for uid, (count, info) in local.items():
            entry = table.get(uid)
            if entry is None or not entry["n"]:
                live = sum(1 for e in table.values() if e["n"])
                if live >= limit:
                    refused.add(uid)
                    continue
                entry = table[uid] = {"n": {}, "i": info}
            entry["n"][node] = count
            entry["i"] = info  # the latest join's info wins, as on Pusher
        table = {uid: e for uid, e in table.items() if e["n"]}
        return {"m": table} if table else None

    return change


def drop_node(node: str) -> Change:
    """Remove every entry of a dead node, whatever the document's shape."""

    def change(doc: Doc) -> Doc:
        if doc is None:
            return None
        if "m" in doc:
            table = {uid: {"n": {k: v for k, v in e.get("n", {}).items() if k != node}, "i": e.get("i")}
                     for uid, e in doc["m"].items()}
            table = {uid: e for uid, e in table.items() if e["n"]}
            return {"m": table} if table else None
        return with_counts(doc, {k: v for k, v in doc.get("n", {}).items() if k != node})

    return change


def register(key: str) -> Change:
    def change(doc: Doc) -> Doc:
        keys = list((doc or {}).get("keys", []))
        if key not in keys:
            keys.append(key)
        return {"keys": keys}

    return change


def unregister(key: str) -> Change:
    def change(doc: Doc) -> Doc:
        keys = [k for k in (doc or {}).get("keys", []) if k != key]
        return {"keys": keys} if keys else None

    return change
