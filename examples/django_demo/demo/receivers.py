"""Webhook signals: Vask calls /pusher/webhook and vask.contrib.django turns each event into a signal."""

import logging

from django.dispatch import receiver
from vask.contrib.django import signals

logger = logging.getLogger("demo")


@receiver(signals.member_added)
def someone_opened_a_document(sender, channel: str, user_id: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
    logger.info("user %s opened %s", user_id, channel)


@receiver(signals.member_removed)
def someone_left_a_document(sender, channel: str, user_id: str, **kwargs) -> None:  # type: ignore[no-untyped-def]
    logger.info("user %s left %s", user_id, channel)
