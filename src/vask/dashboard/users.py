"""Dashboard users, sessions and invites: the model and the store interface, with the in-memory store.

Users are operators (see and manage everything) or members of one billing account (vask.billing). Session
and invite tokens are stored as SHA-256 digests only, so a leaked database does not hand out logins.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, replace
from typing import Literal, Protocol

Role = Literal["operator", "owner", "member"]
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


@dataclass(frozen=True, slots=True)
class User:
    id: str
    email: str
    password_hash: str  # argon2; "" for the operator created by the one-time login
    role: Role
    account_id: str | None  # None for operators
    created_at: float

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    def can_see(self, account_id: str) -> bool:
        return self.is_operator or self.account_id == account_id


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: str
    user_id: str
    csrf: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Invite:
    token_hash: str
    account_id: str
    email: str
    invited_by: str
    expires_at: float


class UserExists(Exception):
    """A user with that email already exists."""


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normal_email(email: str) -> str:
    return email.strip().lower()


class DashboardStore(Protocol):
    """Blocking calls (the dashboard runs them in a worker thread). Emails are stored lower-case."""

    def create_user(self, user: User) -> User:
        """Raises UserExists."""

    def get_user(self, user_id: str) -> User | None: ...

    def user_by_email(self, email: str) -> User | None: ...

    def list_users(self, account_id: str | None = None) -> list[User]: ...

    def put_session(self, session: Session) -> None: ...

    def get_session(self, token_hash: str, now: float) -> Session | None:
        """The session if it exists and has not expired."""

    def delete_session(self, token_hash: str) -> None: ...

    def put_invite(self, invite: Invite) -> None: ...

    def get_invite(self, token_hash: str, now: float) -> Invite | None: ...

    def take_invite(self, token_hash: str, now: float) -> Invite | None:
        """Remove and return the invite if it exists and has not expired (an invite is used once)."""

    def list_invites(self, account_id: str, now: float) -> list[Invite]: ...

    def close(self) -> None: ...


class MemoryDashboardStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.users: dict[str, User] = {}
        self.sessions: dict[str, Session] = {}
        self.invites: dict[str, Invite] = {}

    def create_user(self, user: User) -> User:
        user = replace(user, email=normal_email(user.email))
        with self._lock:
            if any(u.email == user.email for u in self.users.values()):
                raise UserExists(user.email)
            self.users[user.id] = user
        return user

    def get_user(self, user_id: str) -> User | None:
        return self.users.get(user_id)

    def user_by_email(self, email: str) -> User | None:
        email = normal_email(email)
        return next((u for u in self.users.values() if u.email == email), None)

    def list_users(self, account_id: str | None = None) -> list[User]:
        found = [u for u in self.users.values() if account_id is None or u.account_id == account_id]
        return sorted(found, key=lambda u: u.email)

    def put_session(self, session: Session) -> None:
        self.sessions[session.token_hash] = session

    def get_session(self, token_hash: str, now: float) -> Session | None:
        session = self.sessions.get(token_hash)
        return session if session is not None and session.expires_at > now else None

    def delete_session(self, token_hash: str) -> None:
        self.sessions.pop(token_hash, None)

    def put_invite(self, invite: Invite) -> None:
        self.invites[invite.token_hash] = invite

    def get_invite(self, token_hash: str, now: float) -> Invite | None:
        invite = self.invites.get(token_hash)
        return invite if invite is not None and invite.expires_at > now else None

    def take_invite(self, token_hash: str, now: float) -> Invite | None:
        with self._lock:
            invite = self.invites.pop(token_hash, None)
        return invite if invite is not None and invite.expires_at > now else None

    def list_invites(self, account_id: str, now: float) -> list[Invite]:
        return [i for i in self.invites.values() if i.account_id == account_id and i.expires_at > now]

    def close(self) -> None:
        pass
