"""Hypothesis fuzzing of the parsers (targets in tests/fuzz_targets.py): Pusher JSON messages, WebSocket frames,
HTTP API requests (query, signature, bodies) and webhook/app configuration. A target raises only on a bug.
About 4,000 generated inputs in all; scripts/fuzz.py runs the same targets under atheris for longer."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests import fuzz_targets as t

FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

names = st.sampled_from(["pusher:subscribe", "pusher:unsubscribe", "pusher:signin", "pusher:ping",
                         "pusher:pong", "client-x", "pusher:cache_miss", "", "pusher:", "client-"])
channels = st.sampled_from(["a", "private-a", "presence-a", "private-encrypted-a", "cache-a", "#server-to-user-u",
                            "presence-cache-a", "x" * 300, "", "a b", "private-"])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=12)
data_objects = st.fixed_dictionaries({}, optional={
    "channel": channels | json_values, "auth": st.text() | st.just("fuzz-key:" + "0" * 64) | json_values,
    "channel_data": st.text() | st.builds(json.dumps, st.fixed_dictionaries(
        {"user_id": st.text() | st.integers()}, optional={"user_info": json_values})),
    "user_data": st.text() | st.builds(json.dumps, st.fixed_dictionaries({"id": st.text()},
                                                                        optional={"watchlist": json_values})),
})


@st.composite
def pusher_messages(draw: Any) -> bytes:
    message: dict[str, Any] = {"event": draw(names | st.text())}
    if draw(st.booleans()):
        message["channel"] = draw(channels | json_values)
    data = draw(data_objects | json_values)
    message["data"] = json.dumps(data) if draw(st.booleans()) else data
    raw = json.dumps(message).encode()
    if draw(st.integers(0, 9)) == 0:  # now and then, broken bytes
        cut = draw(st.integers(0, len(raw)))
        raw = raw[:cut] + draw(st.binary(max_size=8)) + raw[cut:]
    return raw


@FUZZ
@given(pusher_messages())
def test_pusher_messages(data: bytes) -> None:
    t.pusher_message(data)


@FUZZ
@given(st.binary(max_size=300) | st.builds(lambda h, b: bytes([h, 0x80 | len(b[:125])]) + b"\x00" * 4 + b[:125],
                                           st.integers(0, 255), st.binary(max_size=130)))
def test_ws_frames(data: bytes) -> None:
    t.ws_frames(data)


rest_paths = st.sampled_from(["events", "batch_events", "channels", "channels/presence-a", "channels/presence-a/users",
                              "users/u/terminate_connections", "channels/a%20b", "../3/events", "", "x"])


@FUZZ
@given(st.sampled_from(["s", "s", "-"]), st.sampled_from(["POST", "GET", "PUT", "DELETE", "post"]), rest_paths,
       st.text(max_size=60), st.binary(max_size=200) | st.builds(lambda v: json.dumps(v).encode(), st.one_of(
           st.fixed_dictionaries({"name": st.text(), "channels": st.lists(channels), "data": st.text()},
                                 optional={"socket_id": st.text(), "info": st.text(), "channel": channels}),
           st.fixed_dictionaries({"batch": st.lists(st.dictionaries(st.sampled_from(
               ["name", "channel", "data", "socket_id", "info"]), json_values), max_size=12)}),
           json_values)))
def test_rest_requests(sign: str, method: str, path: str, query: str, body: bytes) -> None:
    t.rest_request(f"{sign}{method}\n{path}\n{query}\n".encode() + body)


@FUZZ
@given(st.builds(lambda v: json.dumps(v).encode(), st.one_of(
    st.fixed_dictionaries({"url": st.text() | st.sampled_from(["http://h", "https://h:99999", "ftp://h",
                                                              "http://h/\x00", "http://[::1"])},
                          optional={"event_types": json_values, "channel_prefix": json_values,
                                    "headers": json_values, "batch": json_values, "batch_window": json_values}),
    st.dictionaries(st.sampled_from(["client_events", "max_connections", "activity_timeout", "webhooks",
                                     "max_event_data_bytes", "nonsense"]), json_values),
    json_values)) | st.binary(max_size=100))
def test_webhook_config(data: bytes) -> None:
    t.webhook_config(data)
