"""Hooks the node calls on state transitions, for webhooks and metering. The default does nothing."""

from __future__ import annotations

from typing import Any

from vask.apps.base import App


class Observer:
    """Override what you need. Calls are made on the event loop and must not block."""

    def channel_occupied(self, app: App, channel: str) -> None: ...

    def channel_vacated(self, app: App, channel: str) -> None: ...

    def member_added(self, app: App, channel: str, user_id: str) -> None: ...

    def member_removed(self, app: App, channel: str, user_id: str) -> None: ...

    def client_event(self, app: App, channel: str, event: str, data: Any, socket_id: str,
                     user_id: str | None) -> None: ...

    def cache_miss(self, app: App, channel: str) -> None: ...

    def subscription_count(self, app: App, channel: str, count: int) -> None: ...

    def broadcast(self, app: App, channel: str, deliveries: int) -> None:
        """One event was published to one channel and written to ``deliveries`` connections."""
