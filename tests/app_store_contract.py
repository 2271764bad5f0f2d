"""The behaviour every AppStore promises (see vask.apps.base.AppStore), run against each implementation.

A test module subclasses ``AppStoreContract`` and provides a ``store`` fixture (an empty store); stores
that keep data outside the process subclass ``PersistentAppStoreContract`` and also provide ``reopen``
(a callable opening a second, independent store on the same data).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from vask.apps.base import App, AppExists, AppNotFound, AppSettings, AppStore, new_app


def _app(n: int = 1, **kwargs: object) -> App:
    fields: dict[str, object] = {"id": f"id-{n}", "key": f"key-{n}", "secret": f"secret-{n}",
                                 "name": f"App {n}"}
    fields.update(kwargs)
    return App.model_validate(fields)


class AppStoreContract:
    def test_empty_store(self, store: AppStore) -> None:
        assert store.list() == []
        assert store.get_by_id("nope") is None
        assert store.get_by_key("nope") is None
        assert store.delete("nope") is False

    def test_create_then_read_by_id_and_key(self, store: AppStore) -> None:
        app = _app(enabled=False, settings=AppSettings(client_events=True, max_connections=7,
                                                        max_backend_events_per_second=None,
                                                        activity_timeout=45))
        returned = store.create(app)
        assert returned == app
        assert store.get_by_id("id-1") == app
        assert store.get_by_key("key-1") == app
        assert store.get_by_key("id-1") is None
        fetched = store.get_by_id("id-1")
        assert fetched is not None
        assert fetched.enabled is False
        assert fetched.settings.max_connections == 7
        assert fetched.settings.activity_timeout == 45
        assert fetched.settings.client_events is True

    def test_generated_app_round_trips(self, store: AppStore) -> None:
        app = new_app(name="généré ✓")
        store.create(app)
        assert store.get_by_key(app.key) == app

    def test_duplicate_id_is_refused(self, store: AppStore) -> None:
        store.create(_app(1))
        with pytest.raises(AppExists, match="id"):
            store.create(_app(1, key="other-key"))
        assert [a.key for a in store.list()] == ["key-1"]

    def test_duplicate_key_is_refused(self, store: AppStore) -> None:
        store.create(_app(1))
        with pytest.raises(AppExists, match="key"):
            store.create(_app(2, key="key-1"))
        assert store.get_by_id("id-2") is None

    def test_list_in_creation_order(self, store: AppStore) -> None:
        for n in (3, 1, 2):
            store.create(_app(n))
        assert [a.id for a in store.list()] == ["id-3", "id-1", "id-2"]

    def test_update_replaces_whole_record(self, store: AppStore) -> None:
        store.create(_app(1, settings=AppSettings(client_events=True, max_connections=5)))
        changed = _app(1, key="new-key", secret="new-secret", name="Renamed", enabled=False)
        assert store.update(changed) == changed
        assert store.get_by_id("id-1") == changed
        assert store.get_by_key("new-key") == changed
        assert store.get_by_key("key-1") is None
        # settings were replaced by the defaults of the new record, not merged
        fetched = store.get_by_id("id-1")
        assert fetched is not None and fetched.settings == AppSettings()

    def test_update_missing_app(self, store: AppStore) -> None:
        with pytest.raises(AppNotFound):
            store.update(_app(9))
        assert store.list() == []

    def test_update_to_a_key_in_use_is_refused(self, store: AppStore) -> None:
        store.create(_app(1))
        store.create(_app(2))
        with pytest.raises(AppExists, match="key"):
            store.update(_app(2, key="key-1"))
        assert store.get_by_id("id-2") == _app(2)
        assert store.get_by_key("key-1") == _app(1)

    def test_update_keeping_own_key(self, store: AppStore) -> None:
        store.create(_app(1))
        store.update(_app(1, name="same key"))
        fetched = store.get_by_key("key-1")
        assert fetched is not None and fetched.name == "same key"

    def test_delete(self, store: AppStore) -> None:
        store.create(_app(1))
        store.create(_app(2))
        assert store.delete("id-1") is True
        assert store.delete("id-1") is False
        assert store.get_by_id("id-1") is None
        assert store.get_by_key("key-1") is None
        assert [a.id for a in store.list()] == ["id-2"]
        # the key is free again once its app is gone
        store.create(_app(3, key="key-1"))
        fetched = store.get_by_key("key-1")
        assert fetched is not None and fetched.id == "id-3"

    def test_returned_apps_are_detached(self, store: AppStore) -> None:
        app = _app(1)
        store.create(app)
        app.name = "changed by caller"
        app.settings.client_events = True
        fetched = store.get_by_id("id-1")
        assert fetched is not None
        fetched.secret = "changed too"
        again = store.get_by_id("id-1")
        assert again == _app(1)

    def test_concurrent_threads(self, store: AppStore) -> None:
        errors: list[BaseException] = []
        threads_n, per_thread = 8, 25

        def work(t: int) -> None:
            try:
                for i in range(per_thread):
                    app = _app(t * 1000 + i)
                    store.create(app)
                    assert store.get_by_key(app.key) == app
                    store.list()
                    if i % 5 == 0:
                        assert store.delete(app.id)
            except BaseException as exc:  # collected: a failure in a thread must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert len(store.list()) == threads_n * (per_thread - per_thread // 5)

    def test_account_id_round_trips(self, store: AppStore) -> None:
        store.create(_app(1))
        store.create(_app(2, account_id="acme"))
        first, second = store.get_by_id("id-1"), store.get_by_key("key-2")
        assert first is not None and first.account_id is None  # the built-in default account
        assert second is not None and second.account_id == "acme"
        assert [a.account_id for a in store.list()] == [None, "acme"]

    def test_update_moves_an_app_between_accounts(self, store: AppStore) -> None:
        store.create(_app(1, account_id="acme"))
        store.update(_app(1, account_id="globex"))
        fetched = store.get_by_id("id-1")
        assert fetched is not None and fetched.account_id == "globex"
        store.update(_app(1))
        fetched = store.get_by_id("id-1")
        assert fetched is not None and fetched.account_id is None

    def test_concurrent_duplicate_creates_admit_exactly_one(self, store: AppStore) -> None:
        outcomes: list[str] = []
        barrier = threading.Barrier(6)

        def work(t: int) -> None:
            barrier.wait()
            try:
                store.create(_app(t, key="contested"))
                outcomes.append("created")
            except AppExists:
                outcomes.append("exists")

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["created"] + ["exists"] * 5
        assert len(store.list()) == 1



class PersistentAppStoreContract(AppStoreContract):
    def test_persists_across_reopen(self, store: AppStore, reopen: Callable[[], AppStore]) -> None:
        store.create(_app(1, settings=AppSettings(user_authentication_required=True)))
        store.create(_app(2))
        store.update(_app(2, name="updated"))
        store.delete("id-1")
        store.create(_app(3))
        store.close()
        other = reopen()
        try:
            assert [a.id for a in other.list()] == ["id-2", "id-3"]
            fetched = other.get_by_key("key-2")
            assert fetched is not None and fetched.name == "updated"
            other.update(_app(3, account_id="acme"))
        finally:
            other.close()
        third = reopen()
        try:
            fetched = third.get_by_id("id-3")
            assert fetched is not None and fetched.account_id == "acme"
        finally:
            other.close()

    def test_writes_visible_to_a_second_open_store(self, store: AppStore,
                                                   reopen: Callable[[], AppStore]) -> None:
        other = reopen()
        try:
            store.create(_app(1))
            assert other.get_by_key("key-1") == _app(1)
            other.update(_app(1, enabled=False))
            fetched = store.get_by_id("id-1")
            assert fetched is not None and fetched.enabled is False
            with pytest.raises(AppExists):
                other.create(_app(2, key="key-1"))
        finally:
            other.close()
