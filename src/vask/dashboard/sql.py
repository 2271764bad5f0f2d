"""The dashboard's users, sessions and invites in the app store's database (SQLite or PostgreSQL).

Versioned apart from the app and billing tables (``dashboard_schema_version``), so each evolves alone.
"""

from __future__ import annotations

import sqlite3
from typing import Any, LiteralString

from vask.apps.base import AppStoreError
from vask.dashboard.users import Invite, Session, User, UserExists, normal_email
from vask.db.sqlite import SqliteDatabase

MIGRATIONS: tuple[tuple[LiteralString, ...], ...] = (
    (
        """
        CREATE TABLE dashboard_users (
            id TEXT PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL,
            account_id TEXT,
            created_at DOUBLE PRECISION NOT NULL
        )
        """,
        """
        CREATE TABLE dashboard_sessions (
            token_hash TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            csrf TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )
        """,
        """
        CREATE TABLE dashboard_invites (
            token_hash TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            email TEXT NOT NULL,
            invited_by TEXT NOT NULL,
            expires_at DOUBLE PRECISION NOT NULL
        )
        """,
    ),
)
USER_COLUMNS = "id, email, password_hash, role, account_id, created_at"
INVITE_COLUMNS = "token_hash, account_id, email, invited_by, expires_at"


class DashboardStoreError(AppStoreError):
    """The dashboard tables cannot be opened or reached."""


def _user(row: tuple[Any, ...]) -> User:
    return User(str(row[0]), str(row[1]), str(row[2]), row[3], row[4], float(row[5]))


def _invite(row: tuple[Any, ...]) -> Invite:
    return Invite(str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]))


def _user_values(user: User) -> tuple[Any, ...]:
    return (user.id, normal_email(user.email), user.password_hash, user.role, user.account_id, user.created_at)


class SqliteDashboardStore(SqliteDatabase):
    error = DashboardStoreError
    passthrough = (UserExists,)

    def _setup(self) -> None:
        with self._transaction() as conn:
            self._migrate(conn, "dashboard_schema_version", MIGRATIONS, "dashboard schema")

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._guard():
            return self._conn.execute(query, params).fetchall()

    def _write(self, query: str, params: tuple[Any, ...]) -> int:
        with self._transaction() as conn:
            return conn.execute(query, params).rowcount

    def create_user(self, user: User) -> User:
        try:
            self._write(f"INSERT INTO dashboard_users ({USER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", _user_values(user))
        except DashboardStoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise UserExists(user.email) from exc
            raise
        return User(*_user_values(user))

    def get_user(self, user_id: str) -> User | None:
        rows = self._rows(f"SELECT {USER_COLUMNS} FROM dashboard_users WHERE id = ?", (user_id,))
        return _user(rows[0]) if rows else None

    def user_by_email(self, email: str) -> User | None:
        rows = self._rows(f"SELECT {USER_COLUMNS} FROM dashboard_users WHERE email = ?", (normal_email(email),))
        return _user(rows[0]) if rows else None

    def list_users(self, account_id: str | None = None) -> list[User]:
        if account_id is None:
            rows = self._rows(f"SELECT {USER_COLUMNS} FROM dashboard_users ORDER BY email")
        else:
            rows = self._rows(f"SELECT {USER_COLUMNS} FROM dashboard_users WHERE account_id = ? ORDER BY email",
                              (account_id,))
        return [_user(row) for row in rows]

    def put_session(self, session: Session) -> None:
        self._write("INSERT OR REPLACE INTO dashboard_sessions (token_hash, user_id, csrf, expires_at) "
                    "VALUES (?, ?, ?, ?)", (session.token_hash, session.user_id, session.csrf, session.expires_at))

    def get_session(self, token_hash: str, now: float) -> Session | None:
        rows = self._rows("SELECT token_hash, user_id, csrf, expires_at FROM dashboard_sessions "
                          "WHERE token_hash = ? AND expires_at > ?", (token_hash, now))
        return Session(rows[0][0], rows[0][1], rows[0][2], float(rows[0][3])) if rows else None

    def delete_session(self, token_hash: str) -> None:
        self._write("DELETE FROM dashboard_sessions WHERE token_hash = ?", (token_hash,))

    def put_invite(self, invite: Invite) -> None:
        self._write(f"INSERT INTO dashboard_invites ({INVITE_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                    (invite.token_hash, invite.account_id, invite.email, invite.invited_by, invite.expires_at))

    def get_invite(self, token_hash: str, now: float) -> Invite | None:
        rows = self._rows(f"SELECT {INVITE_COLUMNS} FROM dashboard_invites WHERE token_hash = ? "
                          "AND expires_at > ?", (token_hash, now))
        return _invite(rows[0]) if rows else None

    def take_invite(self, token_hash: str, now: float) -> Invite | None:
        with self._transaction() as conn:
            rows = conn.execute(f"SELECT {INVITE_COLUMNS} FROM dashboard_invites WHERE token_hash = ?",
                                (token_hash,)).fetchall()
            conn.execute("DELETE FROM dashboard_invites WHERE token_hash = ?", (token_hash,))
        invite = _invite(rows[0]) if rows else None
        return invite if invite is not None and invite.expires_at > now else None

    def list_invites(self, account_id: str, now: float) -> list[Invite]:
        rows = self._rows(f"SELECT {INVITE_COLUMNS} FROM dashboard_invites WHERE account_id = ? AND expires_at > ?",
                          (account_id, now))
        return [_invite(row) for row in rows]


def open_postgres(url: str, schema: str | None = None) -> Any:
    """The PostgreSQL store (imported here: psycopg is optional)."""
    from vask.dashboard.sql_postgres import PostgresDashboardStore

    return PostgresDashboardStore(url, schema=schema)
