"""Choosing implementations from the settings: the one place that knows which store class to build."""

from __future__ import annotations

from vask.apps.base import App, AppExists, AppStore, AppStoreError
from vask.config import Settings

DEFAULT_APP_ID = "app-id"
DEFAULT_APP_KEY = "app-key"
DEFAULT_APP_SECRET = "app-secret"  # well-known development credentials, the same as Soketi's


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


def ensure_default_app(store: AppStore, settings: Settings) -> App | None:
    """Create the well-known development app when enabled and the store is empty; return it if created.

    The caller tells the operator: the returned app's credentials are public and must not reach production.
    """
    if not settings.create_default_app or store.list():
        return None
    app = App(id=DEFAULT_APP_ID, key=DEFAULT_APP_KEY, secret=DEFAULT_APP_SECRET, name="Default app")
    try:
        store.create(app)
    except AppExists:
        # Another process (a second node, or the CLI) created it between our check and our insert.
        return None
    return app
