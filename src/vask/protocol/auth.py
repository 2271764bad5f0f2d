"""HMAC signatures for channel authorization and user sign-in (pusher-protocol.md §1.8).

Every signature is verified over the exact strings received; nothing is re-serialised.
"""

from __future__ import annotations

import hashlib
import hmac

_keyed: dict[str, hmac.HMAC] = {}


def sign(secret: str, message: str) -> str:
    # A keyed HMAC is kept per secret and copied: keying it anew costs a third of each signature.
    base = _keyed.get(secret)
    if base is None:
        if len(_keyed) >= 1024:  # one per app secret in use; bounded all the same
            _keyed.clear()
        base = _keyed[secret] = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    mac = base.copy()
    mac.update(message.encode())
    return mac.hexdigest()


def channel_string(socket_id: str, channel: str, channel_data: str | None) -> str:
    if channel_data is None:
        return f"{socket_id}:{channel}"
    return f"{socket_id}:{channel}:{channel_data}"


def signin_string(socket_id: str, user_data: str) -> str:
    return f"{socket_id}::user::{user_data}"


def check_auth(key: str, secret: str, message: str, auth: object) -> str | None:
    """Verify an ``<key>:<hex>`` auth string over ``message``; return None when valid, else the error text."""
    if not isinstance(auth, str) or not auth:
        return "Auth info required"
    given_key, sep, given_sig = auth.partition(":")
    expected = sign(secret, message)
    # Both comparisons always run, in constant time, so timing says nothing about which part was wrong.
    key_ok = hmac.compare_digest(given_key.encode(), key.encode())
    sig_ok = hmac.compare_digest(given_sig.encode(), expected.encode())
    if sep and key_ok and sig_ok:
        return None
    return f"Invalid signature: Expected HMAC SHA256 hex digest of {message}, but got {auth}"
