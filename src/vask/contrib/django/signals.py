"""Signals sent by :class:`~vask.contrib.django.views.WebhookView`, one per webhook event.

Every receiver gets ``sender`` (the view class), ``payload`` (the event dict as received), ``time_ms`` (when
Vask created the webhook) and the event's fields as keyword arguments, named as Pusher names them:

=====================  ======================================================
``channel_occupied``   ``channel``
``channel_vacated``    ``channel``
``member_added``       ``channel``, ``user_id``
``member_removed``     ``channel``, ``user_id``
``client_event``       ``channel``, ``event``, ``data``, ``socket_id``, ``user_id`` (presence only, else None)
``cache_miss``         ``channel``
``subscription_count`` ``channel``, ``subscription_count``
``webhook_received``   every event, known or not: ``name`` only (read the rest from ``payload``)
=====================  ======================================================

A receiver that raises makes the view answer 500, and Vask retries the delivery: receivers should be idempotent.
"""

from __future__ import annotations

from django.dispatch import Signal

channel_occupied = Signal()
channel_vacated = Signal()
member_added = Signal()
member_removed = Signal()
client_event = Signal()
cache_miss = Signal()
subscription_count = Signal()
webhook_received = Signal()

BY_NAME: dict[str, Signal] = {
    "channel_occupied": channel_occupied,
    "channel_vacated": channel_vacated,
    "member_added": member_added,
    "member_removed": member_removed,
    "client_event": client_event,
    "cache_miss": cache_miss,
    "subscription_count": subscription_count,
}
