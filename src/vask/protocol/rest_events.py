"""Parsing and validation of HTTP API publish bodies and ``info`` attributes (pusher-protocol.md §2.2).

Everything is validated before anything is published, so a bad batch item leaves nothing half-sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from vask.apps.base import AppSettings
from vask.protocol.channels import Kind, channel_type, name_error
from vask.protocol.rest_auth import clip

USER_COUNT = "user_count"
SUBSCRIPTION_COUNT = "subscription_count"
CACHE = "cache"
PUBLISH_INFO = frozenset({USER_COUNT, SUBSCRIPTION_COUNT})

# [0-9] rather than \d: \d also matches non-ASCII digits.
SOCKET_ID_RE = re.compile(r"\A[0-9]+\.[0-9]+\Z")


class BadRequest(Exception):
    """Invalid input; ``status`` is 400 or 413 and ``message`` tells the caller what to change."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# Not frozen: a frozen dataclass's __init__ costs ~5x (object.__setattr__ per field) and one is built per request.
@dataclass(slots=True)
class EventSpec:
    """One validated event to publish on one or more channels."""

    name: str
    data: str
    channels: tuple[str, ...]
    socket_id: str | None = None
    info: frozenset[str] = frozenset()


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body:
        raise BadRequest("Request body required: send a JSON object with Content-Type: application/json")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest("Request body must be a JSON object")
    return value


def parse_info(raw: object, allowed: frozenset[str], where: str = "info") -> frozenset[str]:
    """A comma-separated attribute list; unknown attributes are an error so typos do not pass silently."""
    if raw is None:
        return frozenset()
    if not isinstance(raw, str):
        raise BadRequest(f"{where} must be a comma-separated string such as "
                         '"user_count,subscription_count"')
    attrs = frozenset(part.strip() for part in raw.split(",") if part.strip())
    unknown = sorted(attrs - allowed)
    if unknown:
        raise BadRequest(f"Unknown {where} attribute {clip(unknown[0])!r}: "
                         f"use one of {', '.join(sorted(allowed))}")
    return attrs


def parse_trigger(body: bytes, settings: AppSettings) -> EventSpec:
    """The body of ``POST /apps/{id}/events``: name, data, channels (or channel), socket_id, info."""
    obj = parse_json_object(body)
    has_list, has_single = obj.get("channels") is not None, obj.get("channel") is not None
    if has_list and has_single:
        raise BadRequest("Send either channels (a list) or channel (a string), not both")
    if has_list:
        raw = obj["channels"]
        if not isinstance(raw, list):
            raise BadRequest("channels must be a list of channel names")
        channels = raw
    elif has_single:
        channels = [obj["channel"]]
    else:
        raise BadRequest("channels required: a list of 1 to "
                         f"{settings.max_channels_per_trigger} channel names")
    return _event(obj, channels, settings, "")


def parse_batch(body: bytes, settings: AppSettings) -> tuple[EventSpec, ...]:
    """The body of ``POST /apps/{id}/batch_events``: ``{"batch": [{name, data, channel, ...}, ...]}``."""
    obj = parse_json_object(body)
    batch = obj.get("batch")
    if not isinstance(batch, list):
        raise BadRequest('batch required: send {"batch": [{"channel": ..., "name": ..., "data": ...}, ...]}')
    if len(batch) > settings.max_batch_size:
        raise BadRequest(f"Batch too large: {len(batch)} events, the limit is {settings.max_batch_size} "
                         "per request")
    events: list[EventSpec] = []
    for index, item in enumerate(batch):
        where = f"batch[{index}]: "
        if not isinstance(item, dict):
            raise BadRequest(f"{where}each event must be a JSON object")
        if item.get("channels") is not None:
            raise BadRequest(f"{where}batch events take a single channel (a string), not channels")
        if item.get("channel") is None:
            raise BadRequest(f"{where}channel required")
        events.append(_event(item, [item["channel"]], settings, where))
    return tuple(events)


def _event(obj: dict[str, Any], channels: list[Any], settings: AppSettings, where: str) -> EventSpec:
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"{where}name required: a non-empty string")
    # Pusher documents a narrower character set but does not enforce it (Laravel sends App\Events\X).
    if len(name) > settings.max_event_name_length:
        raise BadRequest(f"{where}Event name too long: {len(name)} characters, the limit is "
                         f"{settings.max_event_name_length}")

    data = obj.get("data")
    if not isinstance(data, str):
        raise BadRequest(f"{where}data required: a string (JSON-encode objects before sending)")
    size = len(data.encode())
    if size > settings.max_event_data_bytes:
        raise BadRequest(f"{where}Event data too large: {size} bytes, the limit is "
                         f"{settings.max_event_data_bytes}", status=413)

    if not channels:
        raise BadRequest(f"{where}channels must name at least one channel")
    if len(channels) > settings.max_channels_per_trigger:
        raise BadRequest(f"{where}Too many channels: {len(channels)}, the limit is "
                         f"{settings.max_channels_per_trigger} per event")
    unique: dict[str, None] = {}  # ordered set: the same channel twice is published once
    for channel in channels:
        error = name_error(channel, settings.max_channel_name_length)
        if error is not None:
            raise BadRequest(f"{where}{error}")
        unique[channel] = None
    names = tuple(unique)
    if len(names) > 1 and any(channel_type(ch).kind is Kind.ENCRYPTED for ch in names):
        # Each encrypted channel has its own key, so one ciphertext cannot serve several channels.
        raise BadRequest(f"{where}Cannot publish to several channels when one is private-encrypted-: "
                         "send one request per encrypted channel")

    socket_id = obj.get("socket_id")
    if socket_id is not None and (not isinstance(socket_id, str) or not SOCKET_ID_RE.match(socket_id)):
        shown = repr(clip(socket_id)) if isinstance(socket_id, str) else clip(repr(socket_id))
        raise BadRequest(f"{where}Invalid socket_id {shown}: expected digits.digits such as "
                         "\"1234.5678\"")

    info = parse_info(obj.get("info"), PUBLISH_INFO, "info")
    return EventSpec(name, data, names, socket_id, info)
