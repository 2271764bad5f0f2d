"""Usage counters for a cluster: account connection counts summed over every node through the shared store.

Broadcast totals already come from the usage ledger that every node writes (LocalUsageCounters). Connections
are kept in one shared document per account, {"n": {node: count}}, written by the cluster hub's worker
whenever this node's count changes and refreshed with the heartbeat. Bound: simultaneous connects on
different nodes within one sync round trip (milliseconds; at most about one second when the store is slow)
can overshoot an account's connection limit by what those nodes accept in that time; a dead node's
connections leave the count within node_timeout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vask.billing.counters import LocalUsageCounters

if TYPE_CHECKING:
    from vask.cluster.hub import ClusterHub


class ClusterUsageCounters(LocalUsageCounters):
    def __init__(self, hub: ClusterHub) -> None:
        super().__init__()
        self.hub = hub
        hub.account_counter = self

    def local_connections(self, account: str) -> int:
        return super().connections(account)

    def connection_opened(self, account: str, app_id: str) -> tuple[int, int]:
        total, app = super().connection_opened(account, app_id)
        self.hub._mark("ac", account, "")
        return total + self.hub.account_totals.get(account, 0), app

    def connection_closed(self, account: str, app_id: str) -> None:
        super().connection_closed(account, app_id)
        self.hub._mark("ac", account, "")

    def connections(self, account: str) -> int:
        return super().connections(account) + self.hub.account_totals.get(account, 0)
