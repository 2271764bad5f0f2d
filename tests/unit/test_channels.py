"""Channel types by anchored prefix and channel name validation (pusher-protocol.md §1.6)."""

from __future__ import annotations

import pytest

from vask.protocol.channels import Kind, channel_type, name_error, user_channel_owner

# (name, kind, cache, needs_auth, presence, client events allowed)
TYPES = [
    ("private-encrypted-cache-x", Kind.ENCRYPTED, True, True, False, False),
    ("private-encrypted-x", Kind.ENCRYPTED, False, True, False, False),
    ("private-cache-x", Kind.PRIVATE, True, True, False, True),
    ("presence-cache-x", Kind.PRESENCE, True, True, True, True),
    ("cache-x", Kind.PUBLIC, True, False, False, False),
    ("private-x", Kind.PRIVATE, False, True, False, True),
    ("presence-x", Kind.PRESENCE, False, True, True, True),
    ("#server-to-user-u1", Kind.USER, False, False, False, False),
    ("my-channel", Kind.PUBLIC, False, False, False, False),
]


@pytest.mark.parametrize(("name", "kind", "cache", "needs_auth", "presence", "client_events"), TYPES)
def test_channel_type_by_prefix(name: str, kind: Kind, cache: bool, needs_auth: bool, presence: bool,
                                client_events: bool) -> None:
    t = channel_type(name)
    assert t.kind is kind
    assert t.cache is cache
    assert t.needs_auth is needs_auth
    assert t.is_presence is presence
    assert t.allows_client_events is client_events


@pytest.mark.parametrize("name", [
    "my-private-channel", "public-private-x", "xprivate-x", "x-presence-y", "notpresence-x", "mycache-x",
    "a-cache-b", "x#server-to-user-u1",
])
def test_names_that_merely_contain_a_prefix_are_public(name: str) -> None:
    t = channel_type(name)
    assert t.kind is Kind.PUBLIC
    assert t.cache is False
    assert not t.needs_auth


@pytest.mark.parametrize("name", ["private", "presence", "cache", "privatefoo", "presencefoo", "cachefoo",
                                  "private_encrypted-x", "Private-x", "PRESENCE-x"])
def test_prefixes_need_the_hyphen_and_the_case(name: str) -> None:
    assert channel_type(name).kind is Kind.PUBLIC
    assert channel_type(name).cache is False


def test_prefix_alone_matches() -> None:
    assert channel_type("private-").kind is Kind.PRIVATE
    assert channel_type("presence-").kind is Kind.PRESENCE
    assert channel_type("cache-").cache is True
    assert channel_type("private-encrypted-").kind is Kind.ENCRYPTED


def test_longest_prefix_wins() -> None:
    # private-encrypted-cache- is also private-encrypted- and private-: the longest must win.
    assert channel_type("private-encrypted-cache-a") == channel_type("private-encrypted-cache-b")
    assert channel_type("private-encrypted-cache-a").cache
    assert channel_type("private-cache-a").kind is Kind.PRIVATE
    assert channel_type("presence-cache-a").kind is Kind.PRESENCE
    # and a presence channel whose name contains "cache-" later on is not a cache channel
    assert not channel_type("presence-x-cache-y").cache
    assert not channel_type("private-x-cache-y").cache


def test_user_channel_owner() -> None:
    assert user_channel_owner("#server-to-user-u1") == "u1"
    assert user_channel_owner("#server-to-user-") == ""
    assert user_channel_owner("server-to-user-u1") is None
    assert user_channel_owner("private-u1") is None


# --- name validation -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "a", "foo-bar_1234@=,.;", "private-foo", "presence-cache-x", "ABCxyz0189", "#server-to-user-u1",
    "#server-to-user-foo-bar_1234@=,.;", "x" * 200,
])
def test_valid_names(name: str) -> None:
    assert name_error(name, 200) is None


@pytest.mark.parametrize("name", [
    "foo#bar", "#foo", "#server-to-user", "with space", "slash/x", "ümlaut", "star*", "colon:x", "tab\t",
    "new\nline", "quote'", "private-a b", "percent%20", "plus+", "a\n",
])
def test_invalid_charset(name: str) -> None:
    problem = name_error(name, 200)
    assert problem is not None
    assert "Invalid channel name" in problem


@pytest.mark.parametrize("name", ["#server-to-user-", "#server-to-user-a#b", "#server-to-user-a b",
                                  "#server-to-user-a/b"])
def test_invalid_user_channel(name: str) -> None:
    problem = name_error(name, 200)
    assert problem is not None
    assert "Invalid user id" in problem


@pytest.mark.parametrize("name", [None, "", 5, b"bytes", ["x"]])
def test_non_string_or_empty(name: object) -> None:
    assert name_error(name, 200) == "Channel name must be a non-empty string"


def test_length_limit_is_inclusive() -> None:
    assert name_error("x" * 164, 164) is None
    assert name_error("x" * 165, 164) == "Channel name too long: 165 characters, the limit is 164"
    assert name_error("x" * 201, 200) == "Channel name too long: 201 characters, the limit is 200"
    # the limit includes the prefix
    assert name_error("private-" + "x" * 192, 200) is None
    assert name_error("private-" + "x" * 193, 200) is not None
    assert name_error("#server-to-user-" + "u" * 185, 200) is not None
