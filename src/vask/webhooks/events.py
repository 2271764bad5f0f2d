"""Webhook events: the exact payloads of pusher-protocol.md §3.2, target filters, the signed body.

An event is a plain dict with the keys in the order of Pusher's documentation. The body is serialised once
per attempt and the signature is computed over exactly those bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from vask.apps.base import WEBHOOK_EVENT_TYPES, WebhookTarget

Event = dict[str, Any]

EVENT_TYPES = WEBHOOK_EVENT_TYPES
OCCUPIED, VACATED = "channel_occupied", "channel_vacated"
MEMBER_ADDED, MEMBER_REMOVED = "member_added", "member_removed"
CLIENT_EVENT, CACHE_MISS, SUBSCRIPTION_COUNT = "client_event", "cache_miss", "subscription_count"

# The delayed event each event type cancels (a re-occupation, a re-join within the delay).
CANCELS = {OCCUPIED: VACATED, MEMBER_ADDED: MEMBER_REMOVED}
DELAYED = frozenset(CANCELS.values())
# The two halves of a pair are kept together: a target that only wants channel_occupied must still see no
# second channel_occupied when a vacate was cancelled, so both halves go through the debouncer.
PARTNER = {**CANCELS, **{later: earlier for earlier, later in CANCELS.items()}}


def channel_event(name: str, channel: str) -> Event:
    """channel_occupied, channel_vacated or cache_miss."""
    return {"name": name, "channel": channel}


def member_event(name: str, channel: str, user_id: str) -> Event:
    return {"name": name, "channel": channel, "user_id": user_id}


def client_event(channel: str, event: str, data: Any, socket_id: str, user_id: str | None) -> Event:
    """``user_id`` only on presence channels (the hub passes None elsewhere)."""
    payload: Event = {"name": CLIENT_EVENT, "channel": channel, "event": event, "data": client_data(data),
                      "socket_id": socket_id}
    if user_id is not None:
        payload["user_id"] = user_id
    return payload


def client_data(data: Any) -> str:
    """Pusher documents ``data`` as a string and string-encodes client data it relays: a client that sent an
    object (as pusher-js does) gets it as compact JSON text, a string goes as it was sent."""
    if isinstance(data, str):
        return data
    try:
        return orjson.dumps(data).decode()
    except TypeError:
        return str(data)


def subscription_count(channel: str, count: int) -> Event:
    return {"channel": channel, "name": SUBSCRIPTION_COUNT, "subscription_count": count}


def accepts(target: WebhookTarget, name: str, channel: str) -> bool:
    """Whether ``target`` wants an event of type ``name`` on ``channel``."""
    if target.event_types and name not in target.event_types:
        return False
    if target.channel_prefix and not channel.startswith(target.channel_prefix):
        return False
    return not (target.channel_suffix and not channel.endswith(target.channel_suffix))


def wanted(targets: list[WebhookTarget], name: str, channel: str) -> bool:
    """Whether any target wants this event, or the other half of its pair (see PARTNER)."""
    partner = PARTNER.get(name)
    return any(accepts(t, name, channel) or (partner is not None and accepts(t, partner, channel))
               for t in targets)


def body(events: list[Event], time_ms: int) -> bytes:
    """``{"time_ms": <int>, "events": [...]}``; time_ms is an integer (Slanger's string breaks pusher-http-python)."""
    return orjson.dumps({"time_ms": time_ms, "events": events})


def signature(secret: str, payload: bytes) -> str:
    """``X-Pusher-Signature``: hex HMAC-SHA256 of the exact body bytes with the app secret."""
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
