"""The users/sessions/invites stores: memory, SQLite and PostgreSQL behave the same."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vask.dashboard.sql import SqliteDashboardStore
from vask.dashboard.users import Invite, MemoryDashboardStore, Session, User, UserExists

PG_URL = os.environ.get("VASK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryDashboardStore()
        return
    if request.param == "sqlite":
        found: Any = SqliteDashboardStore(tmp_path / "vask.db")
    else:
        psycopg = pytest.importorskip("psycopg")
        try:
            psycopg.connect(PG_URL, connect_timeout=2).close()
        except psycopg.Error as exc:
            pytest.skip(f"PostgreSQL is not reachable at {PG_URL}: {exc}")
        from vask.dashboard.sql_postgres import PostgresDashboardStore

        found = PostgresDashboardStore(PG_URL, schema=f"dash_{uuid.uuid4().hex[:10]}")
    try:
        yield found
    finally:
        found.close()


def test_users_sessions_invites(store: Any) -> None:
    user = store.create_user(User("u1", "Ann@Example.com", "h", "owner", "acct", 1.0))
    assert user.email == "ann@example.com"
    with pytest.raises(UserExists):
        store.create_user(User("u2", "ANN@example.com", "h", "member", "acct", 2.0))
    assert store.user_by_email(" ann@example.COM ") == user and store.get_user("u1") == user
    store.create_user(User("u3", "zed@example.com", "h", "member", "other", 3.0))
    assert [u.id for u in store.list_users("acct")] == ["u1"] and len(store.list_users()) == 2
    store.put_session(Session("t1", "u1", "c1", 100.0))
    assert store.get_session("t1", 50.0) == Session("t1", "u1", "c1", 100.0)
    assert store.get_session("t1", 100.0) is None  # expired
    store.delete_session("t1")
    assert store.get_session("t1", 0.0) is None
    invite = Invite("i1", "acct", "new@example.com", "u1", 100.0)
    store.put_invite(invite)
    assert store.get_invite("i1", 10.0) == invite and store.list_invites("acct", 10.0) == [invite]
    assert store.take_invite("i1", 10.0) == invite
    assert store.take_invite("i1", 10.0) is None  # once


def test_sqlite_store_survives_reopen(tmp_path: Path) -> None:
    first = SqliteDashboardStore(tmp_path / "vask.db")
    first.create_user(User("u1", "a@example.com", "h", "owner", "acct", 1.0))
    first.put_session(Session("t", "u1", "c", 1e12))
    first.close()
    again = SqliteDashboardStore(tmp_path / "vask.db")
    assert again.get_session("t", 0.0) is not None and again.user_by_email("a@example.com") is not None
    again.close()
