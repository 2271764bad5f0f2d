"""Live counts of one app across the cluster, read from the shared store (control plane only)."""

from __future__ import annotations

import asyncio
from typing import Any

from vask.cluster import documents as docs
from vask.cluster import sync
from vask.cluster.documents import Counts
from vask.cluster.node import Node
from vask.cluster.store import StoreUnavailable, segment


async def cluster_live(cluster: Node, app_id: str, local: int, channels: int) -> dict[str, Any]:
    """Connections per node (this node's live, the others' as last synced, within a second), per region (the
    region each node states in its heartbeat), and the channels occupied on any node. When the shared store
    is unreachable: this node's own counts, with ``partial`` set."""
    try:
        counts = await docs.get(cluster.store, Counts, sync.connections_key(app_id))
        by_node = {node: n for node, n in (counts.nodes if counts else {}).items() if n > 0}
        by_node.pop(cluster.node_id, None)
        if local:
            by_node[cluster.node_id] = local
        regions = await asyncio.gather(*(cluster.store.get_expiring("nodes", node) for node in by_node))
        occupied = len(await cluster.store.keys(f"ch.{segment(app_id)}."))
    except StoreUnavailable:
        return {"connections": local, "by_node": {cluster.node_id: local}, "by_region": {cluster.region: local},
                "channels_occupied": channels, "partial": True}
    by_region: dict[str, int] = {}
    for (node, count), region in zip(by_node.items(), regions, strict=True):
        name = cluster.region if node == cluster.node_id else (region.decode() if region else "")
        by_region[name] = by_region.get(name, 0) + count
    return {"connections": sum(by_node.values()), "by_node": by_node, "by_region": by_region,
            "channels_occupied": max(occupied, channels)}
