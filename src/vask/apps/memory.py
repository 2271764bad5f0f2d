"""An in-process AppStore for tests and for embedding Vask in another program."""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable

from vask.apps.base import App, AppExists, AppNotFound


class MemoryAppStore:
    """Apps kept in a dict; nothing survives the process.

    Records are copied on the way in and out, so a caller mutating an App it holds never changes the
    store behind its back (the SQL stores behave the same way by construction).
    """

    def __init__(self, apps: Iterable[App] = ()) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, App] = {}
        self._id_by_key: dict[str, str] = {}
        for app in apps:
            self.create(app)

    def get_by_id(self, app_id: str) -> App | None:
        with self._lock:
            app = self._by_id.get(app_id)
            return app.model_copy(deep=True) if app is not None else None

    def get_by_key(self, key: str) -> App | None:
        with self._lock:
            app_id = self._id_by_key.get(key)
            return self._by_id[app_id].model_copy(deep=True) if app_id is not None else None

    def create(self, app: App) -> App:
        with self._lock:
            if app.id in self._by_id:
                raise AppExists(f"an app with id {app.id!r} already exists")
            if app.key in self._id_by_key:
                raise AppExists(f"an app with key {app.key!r} already exists")
            stored = app.model_copy(deep=True)
            self._by_id[app.id] = stored
            self._id_by_key[app.key] = app.id
            return stored.model_copy(deep=True)

    def update(self, app: App) -> App:
        with self._lock:
            old = self._by_id.get(app.id)
            if old is None:
                raise AppNotFound(f"no app with id {app.id!r}")
            owner = self._id_by_key.get(app.key)
            if owner is not None and owner != app.id:
                raise AppExists(f"an app with key {app.key!r} already exists")
            del self._id_by_key[old.key]
            stored = app.model_copy(deep=True)
            self._by_id[app.id] = stored
            self._id_by_key[app.key] = app.id
            return stored.model_copy(deep=True)

    def delete(self, app_id: str) -> bool:
        with self._lock:
            app = self._by_id.pop(app_id, None)
            if app is None:
                return False
            del self._id_by_key[app.key]
            return True

    def close(self) -> None:
        """Nothing to release; kept for the AppStore interface."""

    # Defined last: inside the class body the name `list` would shadow the builtin in annotations.
    def list(self) -> builtins.list[App]:
        with self._lock:
            # dicts keep insertion order, which is creation order like the SQL stores' ORDER BY created_at.
            return [app.model_copy(deep=True) for app in self._by_id.values()]
