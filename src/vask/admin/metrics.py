"""This process's counters in the Prometheus text format (version 0.0.4), for ``GET /metrics`` on the admin API.

Each process of ``--workers N`` answers for itself; the admin port is shared like the data plane's, so a
scraper that needs every worker scrapes each process (or sums what a load balancer spreads).
"""

from __future__ import annotations

from typing import Any

from vask.billing.meter import Meter
from vask.cluster.stats import ClusterStats
from vask.webhooks.sender import WebhookStats

# meter.stats() key → (metric name, type, help)
_METER = {
    "broadcasts_total": ("vask_broadcasts_total", "counter", "Broadcasts published (the billed unit)."),
    "deliveries_total": ("vask_deliveries_total", "counter", "Copies delivered to subscribers (not billed)."),
    "refused_requests": ("vask_quota_refused_requests_total", "counter",
                         "HTTP publishes refused because the account is over its monthly quota."),
    "refused_broadcasts": ("vask_quota_refused_broadcasts_total", "counter",
                           "Broadcasts refused because the account is over its monthly quota."),
    "refused_connections": ("vask_quota_refused_connections_total", "counter",
                            "Connections refused because the account is at its connection limit."),
    "warnings_total": ("vask_quota_warnings_total", "counter", "80% and 100% usage warnings logged."),
    "flushes": ("vask_usage_flushes_total", "counter", "Usage flushes to the store."),
    "failed_flushes": ("vask_usage_failed_flushes_total", "counter", "Usage flushes that failed (retried)."),
    "unflushed_broadcasts": ("vask_usage_unflushed_broadcasts", "gauge", "Broadcasts counted, not yet stored."),
    "open_connections": ("vask_connections", "gauge",
                         "Open connections on this process (WebSockets and HTTP-transport sessions)."),
}

_WEBHOOK_HELP = {
    "events_queued": "Webhook events accepted into a target's queue.",
    "events_delivered": "Webhook events in requests answered 2xx.",
    "requests_delivered": "Webhook requests answered 2xx.",
    "attempts_failed": "Webhook requests that failed (non-2xx, timeout, network error).",
    "retries": "Webhook requests retried.",
    "requests_given_up": "Webhook requests still failing after the retry period.",
    "events_given_up": "Webhook events in requests given up.",
    "events_refused": "Webhook events for refused URLs (private addresses, plain http when https is required).",
    "events_overflowed": "Webhook events dropped because the target's queue was full.",
    "events_lost_at_shutdown": "Webhook events not delivered within the shutdown grace period.",
    "pairs_cancelled": "channel_vacated/member_removed cancelled by a return within the delay.",
    "cache_miss_deduplicated": "cache_miss webhooks not sent again within the de-duplication window.",
}


# ClusterStats.as_dict() key → (metric name, type, help); only nodes of a cluster (--broker) have them.
_CLUSTER = {
    "envelopes_sent": ("vask_broker_envelopes_sent_total", "counter", "Envelopes this node handed to the broker."),
    "envelopes_received": ("vask_broker_envelopes_received_total", "counter",
                           "Envelopes received from other nodes."),
    "envelopes_lost": ("vask_broker_envelopes_lost_total", "counter",
                       "Envelopes of other nodes that never arrived (gaps in their sequence numbers), e.g. "
                       "published while this node was resubscribing after a broker outage."),
    "envelopes_dropped": ("vask_broker_envelopes_dropped_total", "counter",
                          "Envelopes dropped unsent because the outgoing queue was full during an outage."),
    "publishes_refused": ("vask_broker_publishes_refused_total", "counter",
                          "HTTP publishes refused (503) while the broker or the shared store was unavailable."),
    "healthy": ("vask_broker_healthy", "gauge", "1 while the broker and the shared store answer, else 0."),
}


def _sample(name: str, kind: str, text: str, value: float) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]


def render(meter: Meter | None, webhooks: WebhookStats | None, cluster: ClusterStats | None = None) -> str:
    lines: list[str] = []
    if cluster is not None:
        for key, value in cluster.as_dict().items():
            name, kind, text = _CLUSTER[key]
            lines += _sample(name, kind, text, float(value))
    if meter is not None:
        stats: dict[str, Any] = meter.stats()
        for key, (name, kind, text) in _METER.items():
            lines += _sample(name, kind, text, float(stats[key]))
    if webhooks is not None:
        for key, value in webhooks.as_dict().items():
            name = f"vask_webhook_{key}" if key.endswith("_total") else f"vask_webhook_{key}_total"
            lines += _sample(name, "counter", _WEBHOOK_HELP.get(key, key.replace("_", " ") + "."), float(value))
    return "\n".join(lines) + "\n"
