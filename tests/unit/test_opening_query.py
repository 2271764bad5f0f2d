"""The WebSocket opening's query (vask.server.websocket): the plain-query fast path reads the protocol version
exactly as parse_qs does, and socket ids keep Pusher's form."""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from hypothesis import given
from hypothesis import strategies as st

from vask.core.connection import new_socket_id
from vask.server.websocket import _protocol_versions

PART = st.sampled_from(["protocol", "client", "version", "flash", "protocol=", "="]).flatmap(
    lambda k: st.tuples(st.just(k), st.text(alphabet="0123456789abc%+= &.", max_size=4)))


@given(st.lists(PART, max_size=5))
def test_the_fast_path_agrees_with_parse_qs(parts: list[tuple[str, str]]) -> None:
    query = "&".join(f"{k}={v}" for k, v in parts)
    assert _protocol_versions(query) == parse_qs(query).get("protocol")


def test_socket_ids_have_pushers_form_and_do_not_repeat() -> None:
    ids = [new_socket_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"\d{1,9}\.\d{1,10}", i) for i in ids)
