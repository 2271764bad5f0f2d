"""Envelopes between nodes (vask.cluster.envelopes): typed records, a versioned wire form, and a decode that
refuses what it cannot read with one log line, never an exception."""

from __future__ import annotations

import logging

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vask.cluster import envelopes as env

BODIES = [
    env.Publish("ch", "ev", '{"a":1}'),
    env.Publish("private-cache-x", "ev", "d", "1.2", "abc123"),
    env.ClientEvent("presence-r", "client-x", {"n": [1, 2]}, "u1", "3.4"),
    env.ClientEvent("private-r", "client-y", None, None, "3.4"),
    env.MemberAdded("presence-r", "u1", {"name": "Ann"}),
    env.MemberAdded("presence-r", "u2", None),
    env.MemberRemoved("presence-r", "u1"),
    env.Count("ch", 12, 1700000000123),
    env.Watch("u9", True),
    env.Watch("u9", False),
    env.Terminate("u9"),
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: type(b).__name__)
def test_every_body_survives_the_wire(body: env.Body) -> None:
    sent = env.Envelope("node-a", "app-1", body, "boot", 7)
    raw = env.encode(sent)
    assert orjson.loads(raw)["v"] == env.VERSION
    assert env.decode(raw) == sent


def test_a_message_of_a_node_older_than_the_version_field_is_read() -> None:
    old = orjson.dumps({"k": "pub", "o": "old", "a": "1", "c": "ch", "e": "ev", "d": "{}"})
    assert env.decode(old) == env.Envelope("old", "1", env.Publish("ch", "ev", "{}"), "", 0)


def test_an_unknown_version_is_refused_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    newer = orjson.dumps({"v": 2, "k": "pub", "o": "future-node", "a": "1", "c": "ch", "e": "ev", "d": "{}"})
    with caplog.at_level(logging.WARNING, logger="vask.cluster"):
        assert env.decode(newer) is None
        assert env.decode(newer) is None
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "version 2" in lines[0] and "future-node" in lines[0]


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b"null", b'{"k": "pub", "o": "x"}', b'{"k": "nope", "o": "x", "a": "1"}',
    b'{"k": "pub", "o": "x", "a": "1", "c": "ch"}',  # no event, no data
    b'{"k": "cnt", "o": "x", "a": "1", "c": "ch", "n": "12"}',  # a count that is not a number
    b'{"k": "cnt", "o": "x", "a": "1", "c": "ch", "n": true}',
    b'{"k": "w", "o": "x", "a": "1", "u": "u1", "on": 1}',
    b'{"k": "term", "o": 5, "a": "1", "u": "u1"}',
    b'{"k": "mr", "o": "x", "a": "1", "c": "ch", "u": "u1", "q": "7"}',
])
def test_what_is_not_an_envelope_decodes_to_none(raw: bytes) -> None:
    assert env.decode(raw) is None


@given(st.binary(max_size=200))
def test_decode_never_raises_on_bytes(raw: bytes) -> None:
    env.decode(raw)


@given(st.dictionaries(st.sampled_from(["v", "k", "o", "a", "b", "q", "c", "e", "d", "x", "i", "u", "n", "s", "on"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5),
                                 st.sampled_from(["pub", "cli", "ma", "mr", "cnt", "w", "term"]))))
def test_decode_never_raises_on_objects(message: dict[str, object]) -> None:
    decoded = env.decode(orjson.dumps(message))
    if decoded is not None:  # whatever it accepted encodes back to something it reads the same
        assert env.decode(env.encode(decoded)) == decoded
