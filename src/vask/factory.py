"""Choosing implementations from the settings: the one place that knows which store class to build."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from vask.apps.base import App, AppExists, AppStore, AppStoreError
from vask.billing.base import BillingStore, BillingStoreError
from vask.billing.counters import LocalUsageCounters, UsageCounters
from vask.config import Settings
from vask.core.hub import Hub
from vask.masking import mask_url

if TYPE_CHECKING:
    from vask.cluster.replicator import Replicator
    from vask.cluster.store import SharedStore

# Well-known development credentials. The key and secret are Soketi's; the id is numeric because
# pusher-http-python refuses any other (ValueError: Invalid app id). Random ids have 7 digits: no clash.
DEFAULT_APP_ID = "100000"
DEFAULT_APP_KEY = "app-key"
DEFAULT_APP_SECRET = "app-secret"


def open_store(settings: Settings) -> AppStore:
    """Open the app store named by ``settings.database_url`` (SQLite under data_dir when unset).

    Raises AppStoreError when it cannot be opened, including when psycopg is missing for PostgreSQL.
    """
    kind = settings.store_kind
    if kind == "memory":
        from vask.apps.memory import MemoryAppStore

        return MemoryAppStore()
    if kind == "postgresql":
        assert settings.database_url is not None
        try:
            from vask.apps.postgres import PostgresAppStore
        except ImportError as exc:
            raise AppStoreError(str(exc)) from exc
        return PostgresAppStore(settings.database_url)
    from vask.apps.sqlite import SqliteAppStore

    path = settings.sqlite_path
    assert path is not None
    return SqliteAppStore(path)


def open_billing_store(settings: Settings) -> BillingStore:
    """Open the plans, accounts and usage tables, in the same database as the app store.

    Raises BillingStoreError (an AppStoreError) when it cannot be opened.
    """
    kind = settings.store_kind
    if kind == "memory":
        from vask.billing.memory import MemoryBillingStore

        return MemoryBillingStore()
    if kind == "postgresql":
        assert settings.database_url is not None
        try:
            from vask.billing.postgres import PostgresBillingStore
        except ImportError as exc:
            raise BillingStoreError(str(exc)) from exc
        return PostgresBillingStore(settings.database_url)
    from vask.billing.sqlite import SqliteBillingStore

    path = settings.sqlite_path
    assert path is not None
    return SqliteBillingStore(path)


def make_usage_counters(settings: Settings, hub: Hub | None = None) -> UsageCounters:
    """The counters quota checks read: in-process on one node (exact), and on a cluster node connection
    counts summed over every node through the shared store (vask.cluster.counters). Broadcast totals
    come from the shared usage ledger in both cases (vask.billing.counters states the bound)."""
    cluster = cluster_of(hub) if hub is not None else None
    if cluster is not None:
        from vask.cluster.counters import ClusterUsageCounters

        return ClusterUsageCounters(cluster)
    return LocalUsageCounters()


def ensure_default_app(store: AppStore, settings: Settings) -> App | None:
    """Create the well-known development app when enabled, no app is declared in the configuration and the store
    is empty; return it if created.

    The caller tells the operator: the returned app's credentials are public and must not reach production.
    """
    if not settings.create_default_app or settings.declared_apps() or store.list():
        return None
    app = App(id=DEFAULT_APP_ID, key=DEFAULT_APP_KEY, secret=DEFAULT_APP_SECRET, name="Default app")
    try:
        store.create(app)
    except AppExists:
        # Another process (a second node, or the CLI) created it between our check and our insert.
        return None
    return app


def describe_store(settings: Settings) -> str:
    """Which store the settings select, for the start-up banner and the CLI's messages."""
    if settings.store_kind == "sqlite":
        return f"SQLite at {settings.sqlite_path}"
    if settings.store_kind == "memory":
        return "memory:// (nothing is kept)"
    return f"PostgreSQL at {mask_url(settings.database_url or '')}"


def cluster_of(hub: Hub) -> Replicator | None:
    """The replicator attached to ``hub`` when it is one node of a cluster."""
    from vask.cluster.replicator import Replicator

    return hub.replica if isinstance(hub.replica, Replicator) else None


def make_hub(settings: Settings, lookup: Callable[[str], Awaitable[App | None]]) -> Hub:
    """The hub, with a replicator attached when a broker is configured (a cluster node)."""
    if not settings.broker:
        return Hub(time.monotonic)
    import secrets
    import socket

    from vask.broker.base import open_broker
    from vask.cluster.replicator import Replicator

    node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    broker = open_broker(settings.broker, settings.broker_prefix)
    ttls = {"nodes": settings.node_timeout, "locks": max(settings.node_timeout, 10.0), "cache": 30 * 60.0}
    store: SharedStore
    if settings.broker.startswith("memory://"):  # nodes in one process (tests): a space per name and prefix
        from vask.cluster.memory import MemorySpace, MemoryStore

        space = MemorySpace.named(f"{settings.broker.removeprefix('memory://')}/{settings.broker_prefix}")
        store = MemoryStore(ttls, space=space)
    elif settings.broker.startswith(("nats://", "tls://")):
        from vask.cluster.nats_store import NatsStore

        store = NatsStore(settings.broker, settings.broker_prefix, ttls)
    else:
        from vask.cluster.redis_store import RedisStore

        store = RedisStore(settings.broker, settings.broker_prefix, ttls)
    hub = Hub(time.monotonic)
    Replicator(hub, node_id, broker, store, lookup, settings.node_timeout, settings.region,
               settings.webhook_vacate_delay)
    return hub
