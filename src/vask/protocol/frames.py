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
