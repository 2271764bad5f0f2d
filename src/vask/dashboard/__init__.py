"""The web dashboard on the control-plane port: apps, keys, settings, webhooks, debug console, event
creator, stats and usage. See docs/dashboard.md."""

from __future__ import annotations

from vask.config import Settings
from vask.dashboard.users import DashboardStore, MemoryDashboardStore


def open_dashboard_store(settings: Settings) -> DashboardStore:
    """Users, sessions and invites, in the same database as the apps."""
    kind = settings.store_kind
    if kind == "memory":
        return MemoryDashboardStore()
    if kind == "postgresql":
        from vask.dashboard.sql import open_postgres

        assert settings.database_url is not None
        store: DashboardStore = open_postgres(settings.database_url)
        return store
    from vask.dashboard.sql import SqliteDashboardStore

    path = settings.sqlite_path
    assert path is not None
    return SqliteDashboardStore(path)
