"""NATS KV key escaping (vask.cluster.nats_store): any store key becomes a valid KV key and comes back intact,
and a prefix made of whole tokens stays a prefix, so the server can filter on it."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from vask.cluster.nats_store import escape, unescape

VALID = re.compile(r"^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$")  # NATS KV keys, without empty tokens
tokens = st.lists(st.text(max_size=8), min_size=1, max_size=5)


@given(tokens)
def test_any_key_escapes_to_a_valid_key_and_back(parts: list[str]) -> None:
    key = ".".join(parts)
    assert VALID.match(escape(key)), escape(key)
    assert unescape(escape(key)) == key


@given(tokens, tokens)
def test_whole_token_prefixes_stay_prefixes(head: list[str], tail: list[str]) -> None:
    assert escape(".".join(head + tail)).startswith(escape(".".join(head)) + ".")


def test_the_keys_vask_uses_pass_unchanged() -> None:
    for key in ("ch.777.cHJpdmF0ZS1jaGF0LTE", "pm.app-1.cHJlc2VuY2U.dTE", "nk.host-12-a1b2c3", "epoch", "cn.my_app"):
        assert escape(key) == key


def test_foreign_keys_are_read_as_they_are() -> None:
    assert unescape("a=ZZ.b") == "a=ZZ.b"
