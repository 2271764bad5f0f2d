"""The keys of the shared cluster state, and what a node marks to rewrite (their documents:
vask.cluster.documents)."""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from vask.cluster.store import segment


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
