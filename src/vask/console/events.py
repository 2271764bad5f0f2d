"""What the console shows: one small, JSON-able record per thing that happened on an app."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

EVENT_TYPES = ("connection", "disconnection", "subscribed", "unsubscribed", "occupied", "vacated",
               "member_added", "member_removed", "api_message", "client_event", "cache_miss",
               "webhook_ok", "webhook_failed", "error", "http_refused")

# Event data is shown, not stored: a huge payload is cut so one publish cannot flood a browser or a log line.
MAX_SHOWN_DATA = 2000


@dataclass(frozen=True, slots=True)
class ConsoleEvent:
    app_id: str
    type: str  # one of EVENT_TYPES
    at: float  # unix seconds
    node: str  # node id ("local" on a single node)
    region: str
    channel: str | None = None
    socket_id: str | None = None
    # event, data, size, origin, code, reason, status, user_id, url, attempts, ...
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, as the SSE stream and the JSON log lines send it (absent fields left out)."""
        out: dict[str, Any] = {"app_id": self.app_id, "type": self.type, "at": self.at, "node": self.node,
                               "region": self.region}
        if self.channel is not None:
            out["channel"] = self.channel
        if self.socket_id is not None:
            out["socket_id"] = self.socket_id
        if self.details:
            out["details"] = dict(self.details)
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), default=str)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ConsoleEvent:
        """The event another node sent over the broker; KeyError/TypeError/ValueError when it is not one."""
        kind = str(raw["type"])
        if kind not in EVENT_TYPES:
            raise ValueError(f"unknown console event type {kind!r}")
        details = raw.get("details") or {}
        if not isinstance(details, dict):
            raise TypeError("details must be an object")
        channel, socket_id = raw.get("channel"), raw.get("socket_id")
        return cls(str(raw["app_id"]), kind, float(raw["at"]), str(raw["node"]), str(raw.get("region", "")),
                   None if channel is None else str(channel), None if socket_id is None else str(socket_id),
                   details)


def shown_data(data: Any) -> tuple[str, int]:
    """(the data as shown, its size in bytes): strings as they are, other values as JSON; cut when huge."""
    text = data if isinstance(data, str) else orjson.dumps(data, default=str).decode()
    size = len(text.encode())
    if len(text) > MAX_SHOWN_DATA:
        text = text[:MAX_SHOWN_DATA] + f"… ({size} bytes)"
    return text, size
