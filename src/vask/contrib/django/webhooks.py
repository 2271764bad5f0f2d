"""Verify a Pusher-format webhook and turn its events into Django signals.

Checks are the ones pusher-http-python's ``validate_webhook`` makes, each with its own reason: ``X-Pusher-Key``
is the app's key, ``X-Pusher-Signature`` is the HMAC-SHA256 of the exact body bytes with the app secret
(compared in constant time), the body is JSON with an integer ``time_ms`` no older than
``VASK["WEBHOOK_MAX_AGE"]`` seconds (default 300) and a list of ``events``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from . import signals
from .conf import VaskSettings

# The fields of each event type (pusher-protocol.md §3.2), passed to receivers under these names.
FIELDS: dict[str, tuple[str, ...]] = {
    "channel_occupied": ("channel",),
    "channel_vacated": ("channel",),
    "member_added": ("channel", "user_id"),
    "member_removed": ("channel", "user_id"),
    "client_event": ("channel", "event", "data", "socket_id", "user_id"),
    "cache_miss": ("channel",),
    "subscription_count": ("channel", "subscription_count"),
}


class WebhookError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(secret: str, body: bytes) -> str:
    """The ``X-Pusher-Signature`` of ``body``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(config: VaskSettings, body: bytes, key: str | None, signature: str | None, now_ms: float) -> dict[str, Any]:
    """The webhook payload, or :class:`WebhookError` saying why it is refused."""
    if not key or not signature:
        raise WebhookError(403, "missing X-Pusher-Key or X-Pusher-Signature header")
    if not hmac.compare_digest(key.encode(), config.key.encode()):
        raise WebhookError(403, "X-Pusher-Key is not this app's key")
    if not hmac.compare_digest(signature.strip().lower().encode(), sign(config.secret, body).encode()):
        raise WebhookError(403, "X-Pusher-Signature does not match the body")
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookError(400, "body is not JSON") from None
    if not isinstance(payload, dict):
        raise WebhookError(400, "body is not a JSON object")
    time_ms = payload.get("time_ms")
    if not isinstance(time_ms, int) or isinstance(time_ms, bool):
        raise WebhookError(400, "time_ms must be an integer (milliseconds)")
    if abs(now_ms - time_ms) > config.webhook_max_age * 1000:
        raise WebhookError(403, f"time_ms is more than {config.webhook_max_age:g} s away from now")
    events = payload.get("events")
    if not isinstance(events, list) or not all(isinstance(e, dict) and isinstance(e.get("name"), str)
                                               for e in events):
        raise WebhookError(400, "events must be a list of objects with a name")
    return payload


def send_signals(sender: Any, payload: dict[str, Any]) -> int:
    """Send one signal per event (plus ``webhook_received``); returns the number of events."""
    time_ms = payload["time_ms"]
    for event in payload["events"]:
        name = event["name"]
        fields = {field: event.get(field) for field in FIELDS.get(name, ())}
        signal = signals.BY_NAME.get(name)
        if signal is not None:
            signal.send(sender=sender, payload=event, time_ms=time_ms, **fields)
        signals.webhook_received.send(sender=sender, payload=event, time_ms=time_ms, name=name)
    return len(payload["events"])
