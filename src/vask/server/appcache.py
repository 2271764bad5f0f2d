"""Apps read from the store, cached for a few seconds so the hot path never waits on the database.

Changes made with `vask apps ...` (disable, rotate-secret, settings) reach a running server within the TTL.
"""

from __future__ import annotations

import asyncio
import time

from vask.apps.base import App, AppStore


class AppCache:
    def __init__(self, store: AppStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._by_key: dict[str, tuple[float, App | None]] = {}
        self._by_id: dict[str, tuple[float, App | None]] = {}

    def cached_by_key(self, key: str) -> tuple[bool, App | None]:
        """(hit, app) without blocking; on a miss the caller awaits ``by_key``."""
        return self._lookup(self._by_key, key)

    def cached_by_id(self, app_id: str) -> tuple[bool, App | None]:
        return self._lookup(self._by_id, app_id)

    def _lookup(self, table: dict[str, tuple[float, App | None]], name: str) -> tuple[bool, App | None]:
        entry = table.get(name)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    async def by_key(self, key: str) -> App | None:
        hit, app = self.cached_by_key(key)
        if hit:
            return app
        app = await asyncio.to_thread(self.store.get_by_key, key)
        self._remember(app, key=key)
        return app

    async def by_id(self, app_id: str) -> App | None:
        hit, app = self.cached_by_id(app_id)
        if hit:
            return app
        app = await asyncio.to_thread(self.store.get_by_id, app_id)
        self._remember(app, app_id=app_id)
        return app

    def update(self, app: App) -> None:
        """A change made in this process (the dashboard): served at once, not after the TTL."""
        self._remember(app, key=app.key, app_id=app.id)

    def _remember(self, app: App | None, key: str | None = None, app_id: str | None = None) -> None:
        expires = time.monotonic() + self.ttl
        if len(self._by_key) > 10_000:  # bound memory against clients probing random keys
            self._by_key.clear()
            self._by_id.clear()
        if app is not None:
            self._by_key[app.key] = (expires, app)
            self._by_id[app.id] = (expires, app)
        if key is not None:
            self._by_key[key] = (expires, app)
        if app_id is not None:
            self._by_id[app_id] = (expires, app)
