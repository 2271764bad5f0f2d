"""What the cluster's steps (worker, janitor, debounce, views) need of the node they run on.

``vask.cluster.replicator.Replicator`` is the one implementation; the steps depend on this protocol rather
than on it, so the import graph has no circle and a test can hand them a small stand-in.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from vask.apps.base import App
from vask.cluster.envelopes import Body
from vask.cluster.store import SharedStore
from vask.cluster.sync import Dirty
from vask.core.connection import Connection
from vask.core.hub import Hub


class AccountCounter(Protocol):
    def local_connections(self, account: str) -> int: ...


class Node(Protocol):
    hub: Hub
    clock: Callable[[], float]  # monotonic seconds, the clock of the loop's timers
    wall: Callable[[], float]  # seconds since the epoch, comparable across nodes
    node_id: str
    region: str
    store: SharedStore
    node_timeout: float
    vacate_delay: float  # the webhook delay, applied cluster-wide (vask.cluster.debounce)
    quiet: bool  # True while re-publishing state the store lost: those transitions are old news
    settle_until: float  # monotonic time until which other nodes may still be re-publishing
    epoch: str
    store_healthy: bool  # the last round trip to the store succeeded
    registered: set[str]  # keys this node has entries in (its registry in the store)
    synced_members: dict[str, set[str]]  # presence key → the users this node last wrote there
    pending: dict[tuple[str, str], list[Connection]]  # presence joins awaiting the cluster's member list
    app_totals: dict[str, int]  # other nodes' connections per app
    account_totals: dict[str, int]  # other nodes' connections per account
    account_counter: AccountCounter | None

    def mark(self, dirty: Dirty) -> None:
        """Rewrite this document from the local state soon (the sync worker batches them)."""

    def announce(self, app_id: str, body: Body) -> None:
        """Send an envelope to the other nodes."""

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run in the background, kept until done and its failure logged."""

    async def app_by_id(self, app_id: str) -> App | None: ...

    async def resync(self) -> None:
        """Re-publish this node's whole local state."""
