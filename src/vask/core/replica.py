"""What the hub reports to the cluster, when it is one node of several (vask.cluster.replicator).

On a single node the hub is the whole truth and acts on each transition itself: webhooks, presence frames,
subscription counts. In a cluster those are cluster-wide questions, so the hub reports the transition here
instead and the replicator answers it once the shared state says what it means. The hub code is the same in
both cases; only whether a ``Replica`` is attached differs.
"""

from __future__ import annotations

from typing import Any, Protocol

from vask.apps.base import App
from vask.core.connection import Connection
from vask.core.state import AppState


class Replica(Protocol):
    def connections_changed(self, app_id: str) -> None:
        """This node's connection count of the app changed."""

    def other_connections(self, app_id: str) -> int:
        """The other nodes' connections of the app, as last synced (quota checks add this node's own)."""

    def channel_changed(self, app_id: str, channel: str) -> None:
        """This node's subscriber count of the channel changed (occupancy, subscription_count)."""

    def presence_changed(self, app_id: str, channel: str, joined: Connection | None = None) -> None:
        """This node's members changed; ``joined`` waits for its subscription_succeeded until the
        cluster's member list is known."""

    def user_changed(self, app_id: str, user_id: str) -> None:
        """A user's first connection signed in here, or its last one here went."""

    def watchlist_status(self, state: AppState, conn: Connection) -> None:
        """Send ``conn`` the cluster-wide online status of its watchlist."""

    def cache_missed(self, state: AppState, conn: Connection, channel: str) -> None:
        """No cached event here for a new subscriber of a cache channel: another node may have it."""

    def published(self, app: App, channel: str, event: str, data: str, exclude_socket_id: str | None) -> None:
        """Delivered here already; the other nodes deliver to theirs."""

    def client_event(self, app_id: str, channel: str, event: str, data: Any, user_id: str | None,
                     socket_id: str) -> None: ...

    def terminated(self, app_id: str, user_id: str) -> None:
        """The app disconnected a user: the other nodes close its connections too."""
