"""Authorization and sign-in signatures against the worked vectors of pusher-protocol.md §1.8."""

from __future__ import annotations

import pytest
from helpers import KEY, SECRET, SOCKET

from vask.protocol.auth import channel_string, check_auth, sign, signin_string

PRIVATE = "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
USER = "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
PRESENCE = "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
PRESENCE_STALE_DOCS = "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"
PRESENCE_PY = "5b8808f3035fec2e4157c6b430a06d5b0de16d174e1a779e0e2b64d9983bde27"
USER_PY = "d06dc389319077f890321aeac54e04868921e1601686928f61fc9bf702e92830"

PRESENCE_DATA = '{"user_id":10,"user_info":{"name":"Mr. Channels"}}'
PRESENCE_DATA_PY = '{"user_id": 10, "user_info": {"name": "Mr. Channels"}}'

VECTORS = [
    (channel_string(SOCKET, "private-foobar", None), PRIVATE),
    (signin_string(SOCKET, '{"id":"12345"}'), USER),
    (channel_string(SOCKET, "presence-foobar", PRESENCE_DATA), PRESENCE),
    (channel_string(SOCKET, "presence-foobar", '{"user_id":10,"user_info":{"name":"Mr. Pusher"}}'),
     PRESENCE_STALE_DOCS),
    (channel_string(SOCKET, "presence-foobar", PRESENCE_DATA_PY), PRESENCE_PY),
    (signin_string(SOCKET, '{"id": "12345"}'), USER_PY),
]


def test_strings_to_sign() -> None:
    assert channel_string(SOCKET, "private-foobar", None) == "1234.1234:private-foobar"
    assert channel_string(SOCKET, "presence-foobar", PRESENCE_DATA) == f"1234.1234:presence-foobar:{PRESENCE_DATA}"
    assert signin_string(SOCKET, '{"id":"12345"}') == '1234.1234::user::{"id":"12345"}'
    # an empty channel_data is still appended (it was signed that way), unlike a missing one
    assert channel_string(SOCKET, "private-x", "") == "1234.1234:private-x:"


@pytest.mark.parametrize(("message", "expected"), VECTORS)
def test_sign_matches_vectors(message: str, expected: str) -> None:
    assert sign(SECRET, message) == expected


@pytest.mark.parametrize(("message", "expected"), VECTORS)
def test_check_auth_accepts_vectors(message: str, expected: str) -> None:
    assert check_auth(KEY, SECRET, message, f"{KEY}:{expected}") is None


def test_spaced_and_compact_forms_are_different_signatures() -> None:
    # Verified over the exact string received: re-serialising the spaced form would break this.
    compact = channel_string(SOCKET, "presence-foobar", PRESENCE_DATA)
    spaced = channel_string(SOCKET, "presence-foobar", PRESENCE_DATA_PY)
    assert check_auth(KEY, SECRET, compact, f"{KEY}:{PRESENCE_PY}") is not None
    assert check_auth(KEY, SECRET, spaced, f"{KEY}:{PRESENCE}") is not None
    assert check_auth(KEY, SECRET, signin_string(SOCKET, '{"id": "12345"}'), f"{KEY}:{USER}") is not None


def _invalid(message: str, auth: str) -> str:
    return f"Invalid signature: Expected HMAC SHA256 hex digest of {message}, but got {auth}"


@pytest.mark.parametrize("auth", [
    f"wrongkey:{PRIVATE}",  # wrong key prefix, right signature
    f"{KEY}x:{PRIVATE}",
    f":{PRIVATE}",
    f"{KEY}:{PRIVATE[:-1]}0",  # wrong signature
    f"{KEY}:{PRIVATE.upper()}",  # the hex digest is lowercase
    f"{KEY}:{PRIVATE}0",
    f"{KEY}:{PRIVATE[:-2]}",
    f"{KEY}:{USER}",  # a signature over another string
    f"{KEY}:",
    KEY,  # no separator
    PRIVATE,
    f"{KEY}{PRIVATE}",
    f"{KEY}:{PRIVATE}:extra",
    f" {KEY}:{PRIVATE}",
])
def test_check_auth_rejects(auth: str) -> None:
    message = channel_string(SOCKET, "private-foobar", None)
    problem = check_auth(KEY, SECRET, message, auth)
    assert problem == _invalid(message, auth)
    assert problem.startswith("Invalid signature: Expected HMAC SHA256 hex digest of ")


def test_check_auth_wrong_secret() -> None:
    message = channel_string(SOCKET, "private-foobar", None)
    assert check_auth(KEY, "another-secret", message, f"{KEY}:{PRIVATE}") is not None


def test_check_auth_other_socket_or_channel() -> None:
    auth = f"{KEY}:{PRIVATE}"
    assert check_auth(KEY, SECRET, channel_string("1234.1235", "private-foobar", None), auth) is not None
    assert check_auth(KEY, SECRET, channel_string(SOCKET, "private-foobaz", None), auth) is not None
    # a private signature does not authorize the same channel with channel_data appended
    assert check_auth(KEY, SECRET, channel_string(SOCKET, "private-foobar", "{}"), auth) is not None


@pytest.mark.parametrize("auth", [None, "", 0, 123, ["x"], {"auth": "x"}, b"278d:58df"])
def test_check_auth_missing_or_not_a_string(auth: object) -> None:
    assert check_auth(KEY, SECRET, "1234.1234:private-foobar", auth) == "Auth info required"


def test_check_auth_non_ascii_does_not_raise() -> None:
    message = "1234.1234:private-foobar"
    assert check_auth(KEY, SECRET, message, f"{KEY}:é{PRIVATE}") is not None
    assert check_auth("ключ", SECRET, message, f"ключ:{sign(SECRET, message)}") is None


def test_sign_with_many_secrets_in_turn() -> None:
    """sign() keeps a keyed HMAC per secret: signatures stay right across secrets and past its bound."""
    import hashlib
    import hmac

    for i in range(1100):
        secret = f"secret-{i % 1030}"
        message = f"{SOCKET}:private-{i}"
        assert sign(secret, message) == hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert sign(SECRET, VECTORS[0][0]) == PRIVATE
