"""What the HTTP API needs from the node: publish, and read channel state.

The REST handlers (``vask.protocol.rest``) depend on this interface only, so they are tested with a fake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from vask.apps.base import App


@dataclass(frozen=True, slots=True)
class CachedEvent:
    event: str
    data: str
    ttl: int  # seconds left


@dataclass(frozen=True, slots=True)
class ChannelState:
    occupied: bool
    subscription_count: int  # connections subscribed
    user_count: int  # distinct presence members (0 for other channels)
    cache: CachedEvent | None


class HubApi(Protocol):
    def publish(self, app: App, channel: str, event: str, data: str,
                exclude_socket_id: str | None = None) -> None:
        """Deliver one event to every subscriber of ``channel`` (the signed-in user for #server-to-user-*)
        except ``exclude_socket_id``; store it for cache channels. Never blocks on slow subscribers."""

    def channel_state(self, app_id: str, channel: str) -> ChannelState: ...

    def occupied_channels(self, app_id: str, prefix: str = "") -> dict[str, ChannelState]:
        """Occupied channels of the app whose names start with ``prefix``."""

    def presence_user_ids(self, app_id: str, channel: str) -> list[str]: ...

    def terminate_user(self, app_id: str, user_id: str) -> int:
        """Close every connection signed in as ``user_id`` (4009); return how many."""
