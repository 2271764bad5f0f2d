"""Live counts of one app across the cluster, read from the shared store (control plane only)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from vask.cluster import sync
from vask.cluster.store import StoreUnavailable, decode, node_counts, segment

if TYPE_CHECKING:
    from vask.cluster.hub import ClusterHub


async def cluster_live(hub: ClusterHub, app_id: str, local: int, channels: int) -> dict[str, Any]:
    """Connections per node (this node's live, the others' as last synced, within a second), per region (the
    region each node states in its heartbeat), and the channels occupied on any node. When the shared store
    is unreachable: this node's own counts, with ``partial`` set."""
    try:
        raw, _ = await hub.store.get(sync.connections_key(app_id))
        by_node = {node: n for node, n in node_counts(decode(raw)).items() if n > 0}
        by_node.pop(hub.node_id, None)
        if local:
            by_node[hub.node_id] = local
        regions = await asyncio.gather(*(hub.store.get_expiring("nodes", node) for node in by_node))
        occupied = len(await hub.store.keys(f"ch.{segment(app_id)}."))
    except StoreUnavailable:
        return {"connections": local, "by_node": {hub.node_id: local}, "by_region": {hub.region: local},
                "channels_occupied": channels, "partial": True}
    by_region: dict[str, int] = {}
    for (node, count), region in zip(by_node.items(), regions, strict=True):
        name = hub.region if node == hub.node_id else (region.decode() if region else "")
        by_region[name] = by_region.get(name, 0) + count
    return {"connections": sum(by_node.values()), "by_node": by_node, "by_region": by_region,
            "channels_occupied": max(occupied, channels)}
