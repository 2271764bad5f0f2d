"""Shipping an order: the database change and the notification are one unit; the event follows the commit."""

from django.db import transaction
from django.utils import timezone
from vask.contrib.django import trigger_on_commit

from .models import Notification, Order

ITEMS = ["walnut desk", "linen lamp", "wool rug", "oak shelf", "brass clock"]


def ship_next_order(user) -> Order:  # type: ignore[no-untyped-def]
    with transaction.atomic():
        order = Order.objects.filter(user=user, shipped_at__isnull=True).order_by("pk").first()
        if order is None:  # the demo never runs out of orders
            order = Order.objects.create(user=user, item=ITEMS[Order.objects.filter(user=user).count() % len(ITEMS)])
        order.shipped_at = timezone.now()
        order.save(update_fields=["shipped_at"])
        note = Notification.objects.create(user=user, text=f"Order #{order.pk} ({order.item}) has shipped")
        # Only this user's browser may subscribe to the channel (see vask_channels.py).
        trigger_on_commit(f"private-orders.{user.pk}", "order.shipped",
                          {"order": order.pk, "item": order.item, "text": note.text, "at": note.created})
    return order
