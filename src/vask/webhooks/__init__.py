"""Pusher-compatible webhooks: signed, delayed, de-duplicated, batched and retried (pusher-protocol.md §3).

``WebhookService`` is the hub observer the server registers; ``WebhookSender`` does the HTTP work.
"""

from vask.webhooks.sender import WebhookSender, WebhookStats
from vask.webhooks.service import WebhookService

__all__ = ["WebhookSender", "WebhookService", "WebhookStats"]
