"""Building the console feed and the stats for one server process (called by ``vask.server.main``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vask.config import Settings
from vask.console.feed import ConsoleFeed
from vask.console.observer import ConsoleObserver
from vask.console.stats import StatsQuery, StatsRecorder
from vask.console.stats_store import StatsStore, open_stats_store
from vask.core.hub import Hub
from vask.core.observer import Observers

if TYPE_CHECKING:
    from vask.cluster.replicator import Replicator


@dataclass
class Console:
    feed: ConsoleFeed
    store: StatsStore
    recorder: StatsRecorder
    query: StatsQuery

    async def start(self) -> None:
        await self.feed.start()
        await self.recorder.start()

    async def stop(self) -> None:
        """Write the last stats and leave the console bus; the store stays open until ``close``."""
        try:
            await self.recorder.stop()
        finally:
            await self.feed.close()

    def close(self) -> None:
        self.store.close()


def open_console(settings: Settings, hub: Hub, cluster: Replicator | None = None) -> Console:
    """The feed (on the cluster's engine when ``cluster`` is given), the stats recorder and its query,
    attached to ``hub``: its console emit points and its observers."""
    node, broker = "local", None
    if cluster is not None:
        from vask.broker.base import open_broker

        node = cluster.node_id
        # A bus of its own: console traffic (only while someone watches) never queues behind publishes.
        broker = open_broker(settings.broker or "", f"{settings.broker_prefix}_console")
    feed = ConsoleFeed(node, settings.region, broker, watch_interval=settings.console_watch_interval,
                       max_per_second=settings.console_max_per_second)
    store = open_stats_store(settings)
    recorder = StatsRecorder(store, node, hub=hub, flush_interval=settings.stats_flush_interval,
                             minute_retention=settings.stats_minute_retention * 3600)
    hub.console = feed
    if not isinstance(hub.observer, Observers):
        hub.observer = Observers(hub.observer)
    hub.observer.add(recorder)
    hub.observer.add(ConsoleObserver(feed))
    return Console(feed, store, recorder, StatsQuery(store, hub, recorder, node=node, region=settings.region,
                                                     cluster=cluster))
