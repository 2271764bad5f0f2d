"""ChannelRegistry: pattern matching, decisions, and the same_user helper."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import django_test_support  # noqa: F401  (configures Django)
import pytest

from vask.contrib.django import ChannelRegistry, same_user
from vask.contrib.django.registry import compile_pattern

ALICE = SimpleNamespace(pk=1, username="alice")
BOB = SimpleNamespace(pk=2, username="bob")


def test_placeholders_match_one_dot_free_segment() -> None:
    regex = compile_pattern("private-orders.{user_id}")
    assert regex.fullmatch("private-orders.12")["user_id"] == "12"  # type: ignore[index]
    assert regex.fullmatch("private-orders.a-b_c=d@e,f;g")
    for other in ("private-orders.", "private-orders.1.2", "private-ordersX12", "private-orders.1 "):
        assert regex.fullmatch(other) is None, other
    two = compile_pattern("presence-team.{team}.doc.{doc}")
    assert two.fullmatch("presence-team.t1.doc.d2").groupdict() == {"team": "t1", "doc": "d2"}  # type: ignore[union-attr]


@pytest.mark.parametrize(("pattern", "message"), [
    ("orders.{id}", "only private- and presence-"),
    ("private-a.{id}.{id}", "appears twice"),
    ("private-a.{1d}", "braces"),
    ("private-a.{id", "braces"),
    ("private-a.{user}", "reserved"),
])
def test_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_pattern(pattern)


def test_decisions() -> None:
    registry = ChannelRegistry()
    registry.register("private-orders.{user_id}", same_user())
    seen: list[Any] = []

    @registry.channel("presence-doc.{doc_id}")
    def viewers(user: Any, doc_id: str) -> Any:
        seen.append((user.username, doc_id))
        return {"name": user.username.title()} if doc_id == "1" else doc_id == "2"

    assert registry.authorize(ALICE, "private-orders.1").allowed
    refused = registry.authorize(BOB, "private-orders.1")
    assert not refused.allowed and refused.reason == "not allowed on private-orders.1 (rule private-orders.{user_id})"

    with_info = registry.authorize(BOB, "presence-doc.1")
    assert with_info.allowed and with_info.user_info == {"name": "Bob"}
    plain = registry.authorize(BOB, "presence-doc.2")
    assert plain.allowed and plain.user_info is None
    assert not registry.authorize(BOB, "presence-doc.3").allowed
    assert seen == [("bob", "1"), ("bob", "2"), ("bob", "3")]

    assert registry.authorize(ALICE, "private-other.1").reason == "no authorization rule matches private-other.1"
    assert not registry.authorize(ALICE, "public-feed").allowed
    assert registry.patterns == ["private-orders.{user_id}", "presence-doc.{doc_id}"]


def test_first_registered_pattern_wins_and_duplicates_are_refused() -> None:
    registry = ChannelRegistry()
    registry.register("private-{area}.{user_id}", lambda user, area, user_id: False)
    registry.register("private-orders.{user_id}", lambda user, user_id: True)
    assert not registry.authorize(ALICE, "private-orders.1").allowed  # the broader rule came first
    with pytest.raises(ValueError, match="registered already"):
        registry.register("private-{area}.{user_id}", lambda user, area, user_id: True)
    registry.unregister("private-{area}.{user_id}")
    assert registry.authorize(ALICE, "private-orders.1").allowed


def test_vask_channels_modules_are_autodiscovered() -> None:
    # tests/django/vask_test_app is an installed app whose vask_channels.py registers a rule at start-up
    from vask.contrib.django import authorizers

    assert "private-autodiscovered.{name}" in authorizers.patterns
