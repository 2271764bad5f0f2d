"""Messages between nodes on the broker. Every envelope names its origin node and its app."""

from __future__ import annotations

from typing import Any

import orjson

PUBLISH = "pub"  # a channel event (HTTP API or sendToUser); c, e, d, x (excluded socket)
CLIENT = "cli"  # a client event; c, e, d, u (presence user), x (sender)
MEMBER_ADDED = "ma"  # c, u, i
MEMBER_REMOVED = "mr"  # c, u
COUNT = "cnt"  # subscription_count: c, n, s (the count document's version: later wins)
WATCH = "w"  # u, on (bool)
TERMINATE = "term"  # u
KINDS = {PUBLISH, CLIENT, MEMBER_ADDED, MEMBER_REMOVED, COUNT, WATCH, TERMINATE}


def encode(kind: str, node: str, app_id: str, **fields: Any) -> bytes:
    return orjson.dumps({"k": kind, "o": node, "a": app_id, **fields})


def decode(payload: bytes) -> dict[str, Any] | None:
    """The envelope, or None when it is not one of ours (checked, never trusted blindly)."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if (not isinstance(message, dict) or message.get("k") not in KINDS
            or not isinstance(message.get("o"), str) or not isinstance(message.get("a"), str)):
        return None
    return message
