"""Emit points of the data plane that need more than one line: HTTP refusals and API publishes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

from vask.console import logs
from vask.console.events import shown_data
from vask.console.feed import ConsoleFeed

if TYPE_CHECKING:
    from vask.protocol.rest import RestCall

REFUSED_STATUSES = frozenset({401, 403, 413, 429})


def reason_of(body: bytes) -> str:
    """The message of an error response (JSON {"error": ...} or plain text)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode(errors="replace")[:500]
    message = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(message, str):
        return message
    return body.decode(errors="replace")[:500]


def http_refused(feed: ConsoleFeed, app_id: str | None, method: str, path: str, status: int,
                 reason: str) -> None:
    """A 401/403/413/429 answer: logged at info with the reason, and shown in the app's console."""
    if status not in REFUSED_STATUSES:
        return
    logs.refused("HTTP request", reason, app_id=app_id, status=status, method=method, path=path[:200])
    if app_id is not None and feed.watching(app_id):
        feed.note(app_id, "http_refused", None, None, status=status, reason=reason, method=method,
                  path=path[:200])


def api_messages(feed: ConsoleFeed, call: RestCall) -> None:
    """One console event per event per channel of an HTTP publish (call only when the app is watched)."""
    app_id = call.app.id
    for event in call.events:
        shown, size = shown_data(event.data)
        for channel in event.channels:
            feed.note(app_id, "api_message", channel, event.socket_id, event=event.name, data=shown, size=size)
