"""The dashboard tables in PostgreSQL (same schema and versioning as the SQLite store)."""

from __future__ import annotations

from typing import Any

import psycopg

from vask.dashboard.sql import (
    INVITE_COLUMNS,
    MIGRATIONS,
    USER_COLUMNS,
    DashboardStoreError,
    _invite,
    _user,
    _user_values,
)
from vask.dashboard.users import Invite, Session, User, UserExists, normal_email
from vask.db.postgres import PostgresDatabase


class PostgresDashboardStore(PostgresDatabase):
    error = DashboardStoreError
    passthrough = (UserExists,)
    name = "dashboard store"

    def _setup(self) -> None:
        self._run(lambda conn: self._migrate(conn, "dashboard_schema_version", MIGRATIONS, "dashboard schema"),
                  retry=False)

    def create_user(self, user: User) -> User:
        def work(conn: psycopg.Connection[Any]) -> None:
            try:
                conn.execute(f"INSERT INTO dashboard_users ({USER_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)",
                             _user_values(user))
            except psycopg.errors.UniqueViolation as exc:
                raise UserExists(user.email) from exc

        self._run(work, retry=False)
        return User(*_user_values(user))

    def get_user(self, user_id: str) -> User | None:
        rows = self._rows(f"SELECT {USER_COLUMNS} FROM dashboard_users WHERE id = %s", (user_id,))
        return _user(rows[0]) if rows else None

    def user_by_email(self, email: str) -> User | None:
        rows = self._rows(f"SELECT {USER_COLUMNS} FROM dashboard_users WHERE email = %s", (normal_email(email),))
        return _user(rows[0]) if rows else None

    def list_users(self, account_id: str | None = None) -> list[User]:
        if account_id is None:
            rows = self._rows(f"SELECT {USER_COLUMNS} FROM dashboard_users ORDER BY email")
        else:
            rows = self._rows(f"SELECT {USER_COLUMNS} FROM dashboard_users WHERE account_id = %s ORDER BY email",
                              (account_id,))
        return [_user(row) for row in rows]

    def put_session(self, session: Session) -> None:
        self._run(lambda conn: conn.execute(
            "INSERT INTO dashboard_sessions (token_hash, user_id, csrf, expires_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (token_hash) DO UPDATE SET expires_at = excluded.expires_at",
            (session.token_hash, session.user_id, session.csrf, session.expires_at)), retry=False)

    def get_session(self, token_hash: str, now: float) -> Session | None:
        rows = self._rows("SELECT token_hash, user_id, csrf, expires_at FROM dashboard_sessions "
                          "WHERE token_hash = %s AND expires_at > %s", (token_hash, now))
        return Session(rows[0][0], rows[0][1], rows[0][2], float(rows[0][3])) if rows else None

    def delete_session(self, token_hash: str) -> None:
        self._run(lambda conn: conn.execute("DELETE FROM dashboard_sessions WHERE token_hash = %s", (token_hash,)),
                  retry=False)

    def put_invite(self, invite: Invite) -> None:
        self._run(lambda conn: conn.execute(
            f"INSERT INTO dashboard_invites ({INVITE_COLUMNS}) VALUES (%s, %s, %s, %s, %s)",
            (invite.token_hash, invite.account_id, invite.email, invite.invited_by, invite.expires_at)), retry=False)

    def get_invite(self, token_hash: str, now: float) -> Invite | None:
        rows = self._rows(f"SELECT {INVITE_COLUMNS} FROM dashboard_invites WHERE token_hash = %s "
                          "AND expires_at > %s", (token_hash, now))
        return _invite(rows[0]) if rows else None

    def take_invite(self, token_hash: str, now: float) -> Invite | None:
        rows = self._run(lambda conn: conn.execute(
            f"DELETE FROM dashboard_invites WHERE token_hash = %s RETURNING {INVITE_COLUMNS}",
            (token_hash,)).fetchall(), retry=False)
        invite = _invite(rows[0]) if rows else None
        return invite if invite is not None and invite.expires_at > now else None

    def list_invites(self, account_id: str, now: float) -> list[Invite]:
        rows = self._rows(f"SELECT {INVITE_COLUMNS} FROM dashboard_invites WHERE account_id = %s "
                          "AND expires_at > %s", (account_id, now))
        return [_invite(row) for row in rows]
