"""Verification of signed HTTP API requests (pusher-protocol.md §2.3-2.4).

Pure functions: the caller passes the raw path, the raw query string, the raw body and the current time.
The signature is checked over the query exactly as received (only percent-decoded), never over a
re-serialisation, and the error texts are the ones hosted Pusher returns, so SDK users see familiar messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from urllib.parse import unquote

from vask.apps.base import App
from vask.protocol import constants as c
from vask.protocol.auth import sign

AUTH_KEY = "auth_key"
AUTH_SIGNATURE = "auth_signature"
AUTH_TIMESTAMP = "auth_timestamp"
AUTH_VERSION = "auth_version"
BODY_MD5 = "body_md5"
SUPPORTED_VERSION = "1.0"

# Parameters that decide authentication: a second copy would make it ambiguous which one was signed/checked.
_SINGLE_VALUED = (AUTH_KEY, AUTH_SIGNATURE, AUTH_TIMESTAMP, AUTH_VERSION, BODY_MD5)
# Whole or fractional seconds; Pusher's SDKs send whole seconds ('%.0f' in pusher-http-python).
_TIMESTAMP_RE = re.compile(r"\A-?[0-9]{1,15}(?:\.[0-9]{1,9})?\Z")

Params = tuple[tuple[str, str], ...]


class RestAuthError(Exception):
    """The request is not correctly signed; ``status`` (401) and ``message`` go back to the client."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class AppPathMismatch(RestAuthError):
    """The request is correctly signed with the key of an app other than the one named in the path."""

    def __init__(self, message: str, signed_app: App, path_app_id: str) -> None:
        super().__init__(message)
        self.signed_app = signed_app
        self.path_app_id = path_app_id


# Not frozen: a frozen dataclass's __init__ costs ~5x (object.__setattr__ per field) and one is built per request.
@dataclass(slots=True)
class SignedRequest:
    """A request whose signature verified: the app it is signed for and its decoded query parameters.

    ``params`` keeps every pair in received order (keys lower-cased, ``auth_signature`` dropped); handlers
    read them from here so they act on exactly what was signed.
    """

    app: App
    params: Params

    def get(self, key: str) -> str | None:
        """The first value of ``key`` (lower-case), or None."""
        for name, value in self.params:
            if name == key:
                return value
        return None


_last_query: tuple[str, Params] = ("", ())


def parse_query(raw_query: str) -> Params:
    """Split a raw query string into (key, value) pairs: percent-decoded, keys lower-cased, duplicates kept.

    Pusher's SDKs send values unescaped (``info=user_count,subscription_count``) while generic HTTP clients
    percent-encode them; decoding makes both sign the same string. ``+`` is left alone: the SDKs that do not
    escape would send a literal ``+`` and sign it as such.
    """
    global _last_query
    # The server asks twice per request (which app to warm, then the signature): the second is a look-up.
    last = _last_query
    if last[0] == raw_query:
        return last[1]
    pairs: list[tuple[str, str]] = []
    escaped = "%" in raw_query  # what the SDKs send has no escapes: unquote would return every part unchanged
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        if escaped:
            key, value = unquote(key), unquote(value)
        pairs.append((key.lower(), value))
    params = tuple(pairs)
    _last_query = (raw_query, params)
    return params


def string_to_sign(method: str, raw_path: str, params: Iterable[tuple[str, str]]) -> str:
    """``METHOD\\nPATH\\nk=v&k=v`` with the pairs sorted by key, unescaped, ``auth_signature`` left out.

    The sort is stable, so repeated keys such as ``channels[]`` keep the order they were sent in.
    """
    signed = sorted((pair for pair in params if pair[0] != AUTH_SIGNATURE), key=itemgetter(0))
    query = "&".join(f"{key}={value}" for key, value in signed)
    return f"{method.upper()}\n{raw_path}\n{query}"


def sign_request(secret: str, method: str, raw_path: str, params: Iterable[tuple[str, str]]) -> str:
    """The hex HMAC-SHA256 a client must send as ``auth_signature``."""
    return sign(secret, string_to_sign(method, raw_path, params))


def verify_request(
    method: str,
    raw_path: str,
    raw_query: str,
    body: bytes,
    now: float,
    app_by_key: Callable[[str], App | None],
    path_app_id: str | None = None,
) -> SignedRequest:
    """Check the signature of an HTTP API request; return the app it is signed for and its parameters.

    ``app_by_key`` finds an app by its key (None when unknown). ``path_app_id`` is the id from an
    ``/apps/{app_id}/...`` path, if the path has one: the key must belong to that app (AppPathMismatch).
    Raises RestAuthError (401) with Pusher's texts. The checks run in the order of Pusher's signature gem
    (version, timestamp, signature), after the key lookup that picks the secret.
    """
    params = parse_query(raw_query)
    single = _single_values(params)

    key = single.get(AUTH_KEY)
    if key is None:
        raise RestAuthError("auth_key required: sign the request with your app key and secret")
    app = app_by_key(key)
    if app is None:
        raise RestAuthError("Unknown auth_key")

    version = single.get(AUTH_VERSION)
    if version is None:
        raise RestAuthError("Version required")
    if version != SUPPORTED_VERSION:
        raise RestAuthError("Version not supported")

    _check_timestamp(single.get(AUTH_TIMESTAMP), now)
    _check_body_md5(single.get(BODY_MD5), body)

    expected = string_to_sign(method, raw_path, params)
    given = single.get(AUTH_SIGNATURE, "")
    # Constant time, so the response time says nothing about how much of a forged signature was right.
    if not hmac.compare_digest(sign(app.secret, expected).encode(), given.encode()):
        raise RestAuthError(
            f"Invalid signature: you should have sent HmacSHA256Hex({_quote(expected)}, your_secret_key), "
            f"but you sent {_quote(clip(given))}")

    # Checked only once the caller proved it holds a secret, so unauthenticated callers cannot probe ids.
    if path_app_id is not None and path_app_id != app.id:
        raise AppPathMismatch(
            f"auth_key {key} is not a key of app {clip(path_app_id)!r}: check the app id and key your client "
            "is configured with", app, path_app_id)

    return SignedRequest(app, tuple(pair for pair in params if pair[0] != AUTH_SIGNATURE))


def _single_values(params: Params) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in params:
        if key in _SINGLE_VALUED:
            if key in found:
                raise RestAuthError(f"Duplicate query parameter {key}: send it once")
            found[key] = value
    return found


def _check_timestamp(raw: str | None, now: float) -> None:
    if raw is None or raw == "":
        raise RestAuthError("Timestamp required")
    if not _TIMESTAMP_RE.match(raw):
        raise RestAuthError(f"Invalid auth_timestamp {clip(raw)!r}: send whole seconds since the Unix epoch")
    given = float(raw)
    if abs(now - given) >= c.TIMESTAMP_WINDOW:
        raise RestAuthError(
            f"Timestamp expired: Given timestamp ({_iso(given)}) not within {c.TIMESTAMP_WINDOW}s "
            f"of server time ({_iso(now)})")


def _check_body_md5(given: str | None, body: bytes) -> None:
    if not body:
        # pusher-http-python signs the MD5 of the empty body on GET requests too; accept exactly that.
        if given is not None and given != c.EMPTY_BODY_MD5:
            raise RestAuthError(
                f"Invalid body_md5 {clip(given)!r}: the request has no body, whose MD5 is {c.EMPTY_BODY_MD5}")
        return
    if given is None:
        raise RestAuthError("body_md5 required: send the hex MD5 of the request body")
    actual = hashlib.md5(body).hexdigest()
    if not hmac.compare_digest(given.lower().encode(), actual.encode()):
        raise RestAuthError(
            f"Invalid body_md5: you sent {clip(given)!r} but the MD5 of the body received is {actual}")


def clip(text: str, limit: int = 100) -> str:
    """``text`` cut to ``limit`` characters, so an error message never echoes a huge input back."""
    return text if len(text) <= limit else text[:limit] + "..."


def _iso(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(int(timestamp))


def _quote(text: str) -> str:
    """A double-quoted literal with newlines shown as ``\\n``, as in Pusher's error texts."""
    return json.dumps(text, ensure_ascii=False)
