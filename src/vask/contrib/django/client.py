"""The pusher-http-python client built from ``settings.VASK``, and helpers to publish with it.

``vask_client`` is the module-level singleton most apps already keep for hosted Pusher
(``pusher_client = pusher.Pusher(...)``); it is built on first use, so importing it never reads settings, and
rebuilt when ``settings.VASK`` changes (tests with ``override_settings``)::

    from vask.contrib.django import trigger_on_commit, vask_client

    vask_client.trigger("orders", "order.shipped", {"id": 42})
    trigger_on_commit(f"private-orders.{order.user_id}", "order.shipped", {"id": order.pk})
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import pusher
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import HttpRequest

from .conf import VaskSettings, get_settings

logger = logging.getLogger("vask.contrib.django")

Channels = str | list[str] | tuple[str, ...]


@lru_cache(maxsize=1)
def _client_for(config: VaskSettings) -> Any:
    options: dict[str, Any] = {"ssl": config.use_tls, "timeout": config.timeout, "json_encoder": DjangoJSONEncoder}
    if config.host is not None:
        options.update(host=config.host, port=config.port)
    if config.cluster is not None:
        options["cluster"] = config.cluster
    if config.encryption_master_key_base64 is not None:
        options["encryption_master_key_base64"] = config.encryption_master_key_base64
    return pusher.Pusher(app_id=config.app_id, key=config.key, secret=config.secret, **options)


def get_client() -> Any:
    """The ``pusher.Pusher`` for the current settings (one instance per settings value)."""
    return _client_for(get_settings())


class _LazyClient:
    """Forwards every attribute to :func:`get_client`, so the singleton follows settings changes."""

    def __getattr__(self, name: str) -> Any:
        return getattr(get_client(), name)

    def __repr__(self) -> str:
        return "<vask_client: pusher.Pusher built from settings.VASK>"


vask_client: Any = _LazyClient()


def socket_id_of(request: HttpRequest | None) -> str | None:
    """The sender's socket id from the ``X-Socket-ID`` header (what Laravel Echo sends for "only to others")."""
    if request is None:
        return None
    value = request.headers.get("X-Socket-ID", "").strip()
    return value or None


def trigger(channels: Channels, event: str, data: Any, *, socket_id: str | None = None,
            request: HttpRequest | None = None) -> Any:
    """Publish now. ``request`` excludes its ``X-Socket-ID`` connection (the sender already shows the change)."""
    names = [channels] if isinstance(channels, str) else list(channels)
    return get_client().trigger(names, event, data, socket_id or socket_id_of(request))


def trigger_on_commit(channels: Channels, event: str, data: Any, *, socket_id: str | None = None,
                      request: HttpRequest | None = None, using: str | None = None, robust: bool = True) -> None:
    """Publish once the current transaction commits (immediately outside one; never after a rollback).

    Subscribers are told about rows they can then read. With ``robust`` (the default) a failed publish is logged
    and swallowed: the data is committed already, and the request that made it should not fail now.
    """
    sender = socket_id or socket_id_of(request)

    def publish() -> None:
        try:
            trigger(channels, event, data, socket_id=sender)
        except Exception:
            if not robust:
                raise
            logger.exception("publishing %r to %r after commit failed", event, channels)

    transaction.on_commit(publish, using=using)
