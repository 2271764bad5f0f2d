"""The node's local state, as plain records: an app's connections, channels, members, users and cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vask.apps.base import App
from vask.core.connection import Connection
from vask.protocol.channels import ChannelType


@dataclass(slots=True)
class Member:
    info: Any
    connections: int


@dataclass(slots=True)
class Channel:
    name: str
    type: ChannelType
    subscribers: dict[Connection, None] = field(default_factory=dict)  # insertion-ordered set
    members: dict[str, Member] = field(default_factory=dict)
    count_sent_at: float = 0.0
    count_dirty: bool = False
    count_seq: int = 0  # version of the last cluster-wide subscription_count sent (vask.cluster)
    known: dict[str, Any] = field(default_factory=dict)  # cluster members this node's clients were told of

    def member_infos(self) -> dict[str, Any]:
        return {uid: m.info for uid, m in self.members.items()}


@dataclass(slots=True)
class Cached:
    event: str
    data: str
    expires_at: float


@dataclass(slots=True)
class AppState:
    app: App
    connections: dict[Connection, None] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    users: dict[str, dict[Connection, None]] = field(default_factory=dict)  # signed-in user → connections
    watchers: dict[str, dict[Connection, None]] = field(default_factory=dict)  # watched id → watchers
    cache: dict[str, Cached] = field(default_factory=dict)
