"""Usage counters for a cluster: account connection counts summed over every node through the shared store.

Broadcast totals already come from the usage ledger that every node writes (LocalUsageCounters). Connections
are kept in one shared document per account, {"n": {node: count}}, written by the replicator's worker
whenever this node's count changes and refreshed with the heartbeat. Bound: simultaneous connects on
different nodes within one sync round trip (milliseconds; at most about one second when the store is slow)
can overshoot an account's connection limit by what those nodes accept in that time; a dead node's
connections leave the count within node_timeout.
"""

from __future__ import annotations

from vask.billing.counters import LocalUsageCounters
from vask.cluster.node import Node
from vask.cluster.sync import Dirty, Kind


class ClusterUsageCounters(LocalUsageCounters):
    def __init__(self, node: Node) -> None:
        super().__init__()
        self.node = node
        node.account_counter = self

    def local_connections(self, account: str) -> int:
        return super().connections(account)

    def connection_opened(self, account: str, app_id: str) -> tuple[int, int]:
        total, app = super().connection_opened(account, app_id)
        self.node.mark(Dirty(Kind.ACCOUNT, account))
        return total + self.node.account_totals.get(account, 0), app

    def connection_closed(self, account: str, app_id: str) -> None:
        super().connection_closed(account, app_id)
        self.node.mark(Dirty(Kind.ACCOUNT, account))

    def connections(self, account: str) -> int:
        return super().connections(account) + self.node.account_totals.get(account, 0)
