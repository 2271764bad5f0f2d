"""open_store picks the store from the settings; ensure_default_app seeds an empty store once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vask.apps.base import App, AppStoreError
from vask.apps.memory import MemoryAppStore
from vask.apps.sqlite import SqliteAppStore
from vask.config import Settings
from vask.factory import ensure_default_app, open_store


def test_default_store_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    store = open_store(Settings.load(None, data_dir=tmp_path / "data"))
    try:
        assert isinstance(store, SqliteAppStore)
        assert (tmp_path / "data" / "vask.db").is_file()
    finally:
        store.close()


def test_sqlite_url(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere" / "apps.db"
    store = open_store(Settings.load(None, database_url=f"sqlite:///{path}"))
    try:
        assert isinstance(store, SqliteAppStore)
        assert path.is_file()
    finally:
        store.close()


def test_memory_url() -> None:
    assert isinstance(open_store(Settings.load(None, database_url="memory://")), MemoryAppStore)


def test_postgres_without_psycopg_is_a_store_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    for module in ("vask.apps.postgres", "vask.db.postgres"):  # (the second holds the psycopg import)
        monkeypatch.delitem(sys.modules, module, raising=False)
    with pytest.raises(AppStoreError, match=r"pip install 'vask\[postgres\]'"):
        open_store(Settings.load(None, database_url="postgresql://u@127.0.0.1/test"))


def test_default_app_created_once() -> None:
    store = MemoryAppStore()
    settings = Settings.load(None, database_url="memory://")
    app = ensure_default_app(store, settings)
    assert app is not None
    assert (app.id, app.key, app.secret, app.enabled) == ("100000", "app-key", "app-secret", True)
    assert store.get_by_key("app-key") == app
    assert ensure_default_app(store, settings) is None
    assert len(store.list()) == 1


def test_no_default_app_when_disabled() -> None:
    store = MemoryAppStore()
    assert ensure_default_app(store, Settings.load(None, create_default_app=False)) is None
    assert store.list() == []


def test_no_default_app_when_the_store_has_apps() -> None:
    store = MemoryAppStore([App(id="mine", key="my-key", secret="s")])
    assert ensure_default_app(store, Settings.load(None)) is None
    assert [a.id for a in store.list()] == ["mine"]


def test_a_broker_makes_the_hub_a_cluster_node_and_none_keeps_it_single() -> None:
    from vask.cluster.memory import MemoryStore
    from vask.factory import cluster_of, make_hub

    async def lookup(app_id: str) -> None:
        return None

    single = make_hub(Settings(), lookup)
    assert single.replica is None and cluster_of(single) is None
    node = make_hub(Settings(broker="memory://factory-test", node_id="n1"), lookup)
    cluster = cluster_of(node)
    assert cluster is not None and node.replica is cluster
    assert cluster.node_id == "n1" and isinstance(cluster.store, MemoryStore)
