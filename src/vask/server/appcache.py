"""Apps read from the store, cached for a few seconds so the hot path never waits on the database.

Changes made with `vask apps ...` (disable, rotate-secret, settings) reach a running server within the TTL.

When the store cannot be read (the database is down), the last known record of an app is kept and used for
another TTL, so connections and publishes go on through a database outage; an app never seen before raises
AppStoreUnavailable (the caller answers 503 / refuses the connection with 4100, both "retry later").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from vask.apps.base import App, AppStore

log = logging.getLogger("vask.apps")
WARN_EVERY = 10.0  # seconds between warnings while the store stays unreadable


class AppStoreUnavailable(Exception):
    """The app store could not be read and the app is not known from before."""


class AppCache:
    def __init__(self, store: AppStore, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._by_key: dict[str, tuple[float, App | None]] = {}
        self._by_id: dict[str, tuple[float, App | None]] = {}
        self._warned = 0.0

    def cached_by_key(self, key: str) -> tuple[bool, App | None]:
        """(hit, app) without blocking; on a miss the caller awaits ``by_key``."""
        return self._lookup(self._by_key, key)

    def cached_by_id(self, app_id: str) -> tuple[bool, App | None]:
        return self._lookup(self._by_id, app_id)

    def known_by_key(self, key: str) -> App | None:
        """The cached record, expired or not: for a caller that just checked it was fresh (a TTL may run out
        between that check and this call, which must not turn a known app into an unknown one)."""
        entry = self._by_key.get(key)
        return entry[1] if entry is not None else None

    def known_by_id(self, app_id: str) -> App | None:
        entry = self._by_id.get(app_id)
        return entry[1] if entry is not None else None

    def _lookup(self, table: dict[str, tuple[float, App | None]], name: str) -> tuple[bool, App | None]:
        entry = table.get(name)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    async def by_key(self, key: str) -> App | None:
        hit, app = self.cached_by_key(key)
        if hit:
            return app
        app = await self._read(self.store.get_by_key, key, self._by_key)
        self._remember(app, key=key)
        return app

    async def by_id(self, app_id: str) -> App | None:
        hit, app = self.cached_by_id(app_id)
        if hit:
            return app
        app = await self._read(self.store.get_by_id, app_id, self._by_id)
        self._remember(app, app_id=app_id)
        return app

    async def _read(self, read: Callable[[str], App | None], name: str,
                    table: dict[str, tuple[float, App | None]]) -> App | None:
        try:
            return await asyncio.to_thread(read, name)
        except Exception as exc:  # whatever the store's driver raises when the database is away
            stale = table.get(name)
            now = time.monotonic()
            if now - self._warned >= WARN_EVERY:
                self._warned = now
                log.warning("app store unavailable (%s: %s); %s", type(exc).__name__, exc,
                            "using the apps' last known settings" if stale else "refusing unknown apps")
            if stale is None:
                raise AppStoreUnavailable(str(exc)) from exc
            return stale[1]

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
