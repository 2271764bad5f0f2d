"""The hub's transitions (occupied, vacated, members, client events, cache misses) as console events."""

from __future__ import annotations

from typing import Any

from vask.apps.base import App
from vask.console.events import shown_data
from vask.console.feed import ConsoleFeed
from vask.core.observer import Observer


class ConsoleObserver(Observer):
    """On a cluster the hub reports each occupied/vacated/member transition once, on the node that saw it,
    so the console shows each once too. Broadcasts are not observed here: API publishes are emitted where
    the request is answered (with the event's name and data), client events below."""

    def __init__(self, feed: ConsoleFeed) -> None:
        self.feed = feed

    def channel_occupied(self, app: App, channel: str) -> None:
        if self.feed.watching(app.id):
            self.feed.note(app.id, "occupied", channel)

    def channel_vacated(self, app: App, channel: str) -> None:
        if self.feed.watching(app.id):
            self.feed.note(app.id, "vacated", channel)

    def member_added(self, app: App, channel: str, user_id: str) -> None:
        if self.feed.watching(app.id):
            self.feed.note(app.id, "member_added", channel, user_id=user_id)

    def member_removed(self, app: App, channel: str, user_id: str) -> None:
        if self.feed.watching(app.id):
            self.feed.note(app.id, "member_removed", channel, user_id=user_id)

    def client_event(self, app: App, channel: str, event: str, data: Any, socket_id: str,
                     user_id: str | None) -> None:
        if self.feed.watching(app.id):
            shown, size = shown_data(data)
            self.feed.note(app.id, "client_event", channel, socket_id, event=event, data=shown, size=size,
                           user_id=user_id)

    def cache_miss(self, app: App, channel: str) -> None:
        if self.feed.watching(app.id):
            self.feed.note(app.id, "cache_miss", channel)
