"""Passwords (argon2id), random tokens, the login rate limit and the one-time operator login."""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD = 10
_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY = _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and bool(stored)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password: str, email: str) -> str | None:
    """Why ``password`` is refused, or None."""
    if len(password) < MIN_PASSWORD:
        return f"The password must have at least {MIN_PASSWORD} characters."
    if len(password) > 256:
        return "The password may have at most 256 characters."
    if password.strip().lower() == email.strip().lower():
        return "The password must not be your email address."
    return None


def token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class LoginLimiter:
    """At most ``attempts`` failed logins per ``window`` seconds for one client address and for one email.

    Kept in this process's memory: a restart forgets the failures, which only gives an attacker one more
    window; several nodes each keep their own count.
    """

    def __init__(self, attempts: int = 5, window: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        found = self._failures.get(key)
        if found is None:
            return deque()
        while found and found[0] <= now - self.window:
            found.popleft()
        if not found:
            del self._failures[key]
        return found

    def retry_after(self, *keys: str) -> float:
        """Seconds until a login for these keys may be tried again; 0 when it may now."""
        wait = 0.0
        for key in keys:
            recent = self._recent(key)
            if len(recent) >= self.attempts:
                wait = max(wait, recent[0] + self.window - self.clock())
        return wait

    def failed(self, *keys: str) -> None:
        for key in keys:
            self._failures.setdefault(key, deque()).append(self.clock())
        if len(self._failures) > 100_000:  # a flood of distinct keys must not grow memory without bound
            self._failures.clear()

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)


class OneTimeLogin:
    """The operator login `vask serve` prints: valid once, for ``ttl`` seconds."""

    def __init__(self, ttl: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.value: str | None = token()
        self.expires = clock() + ttl

    def take(self, given: str) -> bool:
        value = self.value
        if value is None or self.clock() > self.expires or not same(value, given):
            return False
        self.value = None
        return True
