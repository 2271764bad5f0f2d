"""ConsoleFilter: types, exact channel or prefix, case-insensitive text search, and query parsing."""

from __future__ import annotations

import pytest

from vask.console.events import EVENT_TYPES, ConsoleEvent
from vask.console.filters import ConsoleFilter


def event(kind: str = "api_message", channel: str | None = "private-chat-1", **details: object) -> ConsoleEvent:
    return ConsoleEvent("app1", kind, 1.0, "local", "", channel, "1.2", details)


def test_empty_filter_matches_everything() -> None:
    flt = ConsoleFilter()
    assert all(flt.matches(event(kind)) for kind in EVENT_TYPES)
    assert flt.matches(event(channel=None))


def test_types() -> None:
    flt = ConsoleFilter(frozenset({"connection", "error"}))
    assert flt.matches(event("connection", None))
    assert flt.matches(event("error"))
    assert not flt.matches(event("api_message"))


def test_exact_channel_and_prefix() -> None:
    exact = ConsoleFilter(channel="private-chat-1")
    assert exact.matches(event(channel="private-chat-1"))
    assert not exact.matches(event(channel="private-chat-10"))
    assert not exact.matches(event(channel=None))  # a connection event has no channel
    prefix = ConsoleFilter(channel="private-chat-*")
    assert prefix.matches(event(channel="private-chat-10"))
    assert prefix.matches(event(channel="private-chat-"))
    assert not prefix.matches(event(channel="presence-chat-1"))


def test_text_is_a_case_insensitive_search_of_the_whole_event() -> None:
    flt = ConsoleFilter(text="ORDER-42")
    assert flt.matches(event(event="new-order", data='{"id": "order-42"}'))
    assert not flt.matches(event(event="new-order", data='{"id": "order-43"}'))
    assert ConsoleFilter(text="1.2").matches(event())  # the socket id is searched too
    assert ConsoleFilter(text="café").matches(event(data="CAFÉ au lait"))


def test_all_conditions_must_hold() -> None:
    flt = ConsoleFilter(frozenset({"api_message"}), "private-*", "hello")
    assert flt.matches(event(data="hello"))
    assert not flt.matches(event("client_event", data="hello"))
    assert not flt.matches(event(channel="public", data="hello"))
    assert not flt.matches(event(data="bye"))


def test_from_query() -> None:
    flt = ConsoleFilter.from_query({"types": "connection, api_message,", "channel": "private-*", "q": "x"})
    assert flt == ConsoleFilter(frozenset({"connection", "api_message"}), "private-*", "x")
    assert ConsoleFilter.from_query({}) == ConsoleFilter()
    assert ConsoleFilter.from_query({"types": "", "channel": " ", "q": ""}) == ConsoleFilter()
    assert ConsoleFilter.from_query({"channel": "*"}) == ConsoleFilter()


@pytest.mark.parametrize(("query", "message"), [
    ({"types": "connection,bogus"}, "unknown event type bogus"),
    ({"channel": "a*b"}, "only allowed at the end"),
    ({"q": "x" * 201}, "at most 200"),
])
def test_from_query_says_what_is_wrong(query: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConsoleFilter.from_query(query)


def test_unknown_type_in_constructor() -> None:
    with pytest.raises(ValueError, match="use connection, disconnection"):
        ConsoleFilter(frozenset({"connect"}))
