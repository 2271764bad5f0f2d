"""Hooks the node calls on state transitions, for webhooks and metering. The default does nothing."""

from __future__ import annotations

import logging
from typing import Any

from vask.apps.base import App

log = logging.getLogger("vask.observer")


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

    def delivered(self, app: App, channel: str, deliveries: int) -> None:
        """A broadcast published on another node was written to ``deliveries`` connections of this node."""

    def refuse_broadcasts(self, app: App, count: int) -> str | None:
        """Asked before ``count`` broadcasts are published (an HTTP publish, a client event): the reason to
        refuse them (a quota), or None to allow. Must be cheap: it runs on every publish."""
        return None


class Observers(Observer):
    """Forwards every call to each observer in turn; one failing observer does not stop the others."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = list(observers)
        self.bound: dict[str, list[Any]] = {}  # per hook, the bound methods of the observers that override it

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)
        self.bound.clear()

    def refuse_broadcasts(self, app: App, count: int) -> str | None:
        for observer in self.observers:
            try:
                reason = observer.refuse_broadcasts(app, count)
            except Exception:  # a failing gate allows the publish: metering must not take publishing down
                log.exception("observer %s failed in refuse_broadcasts", type(observer).__name__)
                continue
            if reason is not None:
                return reason
        return None


def _forward(name: str) -> Any:
    default = getattr(Observer, name)

    def call(self: Observers, *args: Any) -> None:
        # Only the observers that override the hook, bound once: ``broadcast`` runs on every publish.
        methods = self.bound.get(name)
        if methods is None:
            methods = self.bound[name] = [getattr(observer, name) for observer in self.observers
                                          if getattr(type(observer), name, default) is not default]
        for method in methods:
            try:
                method(*args)
            except Exception:
                log.exception("observer %s failed in %s", type(method.__self__).__name__, name)
    call.__name__ = name
    return call


for _name in ("channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event",
              "cache_miss", "subscription_count", "broadcast", "delivered"):
    setattr(Observers, _name, _forward(_name))
