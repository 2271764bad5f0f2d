"""The app cache at the edges: a TTL running out between the freshness check and the lookup, and an outage."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from vask.apps.base import App
from vask.server import appcache
from vask.server.appcache import AppCache, AppStoreUnavailable
from vask.server.routes import _CachedApps

APP = App(id="1", key="k", secret="s")


class Store:
    def __init__(self) -> None:
        self.down = False
        self.reads = 0

    def get_by_key(self, key: str) -> App | None:
        self.reads += 1
        if self.down:
            raise OSError("connection refused")
        return APP if key == "k" else None

    def get_by_id(self, app_id: str) -> App | None:
        self.reads += 1
        if self.down:
            raise OSError("connection refused")
        return APP if app_id == "1" else None


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(appcache.time, "monotonic", lambda: now[0])
    return now


def test_an_app_checked_fresh_stays_known_when_its_ttl_runs_out_just_after(clock: list[float]) -> None:
    cache = AppCache(Store(), ttl=1.0)  # type: ignore[arg-type]
    asyncio.run(cache.by_key("k"))
    assert cache.cached_by_key("k") == (True, APP)  # the request's freshness check passes...
    clock[0] += 1.5  # ...and the TTL ends before the HTTP API looks the key up
    lookup = _CachedApps(SimpleNamespace(apps=cache))  # type: ignore[arg-type]
    assert lookup.get_by_key("k") == APP  # was None: "401 Unknown auth_key" for a valid app
    assert lookup.get_by_id("1") == APP
    assert lookup.get_by_key("other") is None


def test_the_last_known_record_is_used_while_the_store_is_down(clock: list[float]) -> None:
    store = Store()
    cache = AppCache(store, ttl=1.0)  # type: ignore[arg-type]
    asyncio.run(cache.by_key("k"))
    store.down = True
    clock[0] += 5.0
    assert asyncio.run(cache.by_key("k")) == APP
    reads = store.reads
    assert asyncio.run(cache.by_id("1")) == APP and cache.cached_by_key("k") == (True, APP)  # re-armed
    assert store.reads == reads  # (the record was re-armed for a TTL: no read per request)
    with pytest.raises(AppStoreUnavailable):
        asyncio.run(cache.by_key("never-seen"))
    store.down = False
    assert asyncio.run(cache.by_key("never-seen")) is None


