"""Encoding of server frames and decoding of client frames (pusher-protocol.md §1.2-1.4).

Server frames carry ``data`` as a JSON-encoded string, as Pusher does; published events carry the
publisher's ``data`` verbatim. ``ws_frame`` wraps a payload in an unmasked WebSocket text frame so a
broadcast is framed once and the same bytes go to every subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


def encode(event: str, data: Any, channel: str | None = None, user_id: str | None = None) -> bytes:
    """One Pusher message as JSON bytes; key order event, data, channel, user_id as in real captures."""
    message: dict[str, Any] = {"event": event, "data": data}
    if channel is not None:
        message["channel"] = channel
    if user_id is not None:
        message["user_id"] = user_id
    return orjson.dumps(message)


def encode_internal(event: str, payload: Any, channel: str | None = None) -> bytes:
    """A protocol frame whose ``data`` is the JSON string of ``payload`` (Pusher's double encoding)."""
    return encode(event, orjson.dumps(payload).decode(), channel)


def encode_error(code: int | None, message: str) -> bytes:
    return encode("pusher:error", {"code": code, "message": message})


def ws_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 §5.2) around ``payload``."""
    length = len(payload)
    if length < 126:
        header = bytes((0x81, length))
    elif length < 65536:
        header = bytes((0x81, 126)) + length.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + length.to_bytes(8, "big")
    return header + payload


@dataclass(frozen=True, slots=True)
class ClientMessage:
    event: str
    data: Any
    channel: str | None


class BadMessage(Exception):
    """The frame is not a Pusher message; the text says why, for the pusher:error frame."""


def decode(payload: bytes | str) -> ClientMessage:
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise BadMessage("Invalid JSON: a Pusher message is a JSON object with an 'event' key") from None
    if not isinstance(message, dict):
        raise BadMessage("Invalid message: expected a JSON object with an 'event' key")
    event = message.get("event")
    if not isinstance(event, str) or not event:
        raise BadMessage("Invalid message: 'event' must be a non-empty string")
    channel = message.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise BadMessage("Invalid message: 'channel' must be a string")
    return ClientMessage(event, message.get("data"), channel)


def data_object(data: Any) -> dict[str, Any] | None:
    """The ``data`` of a protocol event as an object; some clients send it JSON-encoded as a string."""
    if isinstance(data, str):
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
    return data if isinstance(data, dict) else None


# -- the server's protocol frames, built here only (the hub and the cluster replicator both send them) ------

def presence_data(members: dict[str, Any]) -> dict[str, Any]:
    """The ``presence`` object of subscription_succeeded: user id → user info of every member."""
    return {"count": len(members), "ids": list(members), "hash": members}


def subscription_succeeded(channel: str, members: dict[str, Any] | None = None) -> bytes:
    """``members`` for a presence channel (user id → info), None for the others."""
    payload = {} if members is None else {"presence": presence_data(members)}
    return encode_internal("pusher_internal:subscription_succeeded", payload, channel)


def member_added(channel: str, user_id: str, info: Any) -> bytes:
    payload: dict[str, Any] = {"user_id": user_id}
    if info is not None:
        payload["user_info"] = info
    return encode_internal("pusher_internal:member_added", payload, channel)


def member_removed(channel: str, user_id: str) -> bytes:
    return encode_internal("pusher_internal:member_removed", {"user_id": user_id}, channel)


def subscription_count(channel: str, count: int) -> bytes:
    return encode_internal("pusher_internal:subscription_count", {"subscription_count": count}, channel)


def cache_miss(channel: str) -> bytes:
    return encode_internal("pusher:cache_miss", {}, channel)


def watchlist_change(user_id: str, online: bool) -> bytes:
    events = [{"name": "online" if online else "offline", "user_ids": [user_id]}]
    return encode_internal("pusher_internal:watchlist_events", {"events": events})


def watchlist_status(watchlist: list[str], online: set[str]) -> bytes | None:
    """The status of a whole watchlist, as pusher-js reads it right after sign-in; None when it is empty."""
    on = [u for u in watchlist if u in online]
    off = [u for u in watchlist if u not in online]
    events = [{"name": n, "user_ids": ids} for n, ids in (("online", on), ("offline", off)) if ids]
    return encode_internal("pusher_internal:watchlist_events", {"events": events}) if events else None

