"""The PostgreSQL server of the store tests, and a throwaway schema per test (import after importorskip).

The server is taken from VASK_TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test); when it
cannot be reached every test that uses it is skipped with the connection error as the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from vask.masking import mask_url

URL = os.environ.get("VASK_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="module", name="admin")
def admin_fixture() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    try:
        conn = psycopg.connect(URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {mask_url(URL)}: {exc}")
    yield conn
    conn.close()


@pytest.fixture(name="schema")
def schema_fixture(admin: psycopg.Connection[tuple[object, ...]]) -> Iterator[str]:
    name = f"vask_test_{uuid.uuid4().hex[:12]}"
    yield name
    admin.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))
