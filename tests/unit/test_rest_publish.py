"""HTTP API publishing (pusher-protocol.md §2.2): POST events and batch_events, validation and limits."""

from __future__ import annotations

from typing import Any

import pytest
from rest_fakes import (
    APP,
    SMALL,
    FakeHub,
    assert_error,
    assert_json,
    call,
    post_event,
    sample_hub,
)


@pytest.fixture
def hub() -> FakeHub:
    return sample_hub()


# --- POST events -----------------------------------------------------------------------------------------

def test_trigger_with_single_channel_field(hub: FakeHub) -> None:
    response = post_event(hub, channels=None, channel="private-x")
    assert assert_json(response) == {}
    assert response.broadcasts == 1
    assert hub.published == [("3", "private-x", "ev", "{}", None)]


def test_trigger_duplicate_channels_publish_once(hub: FakeHub) -> None:
    assert post_event(hub, channels=["a", "b", "a"]).broadcasts == 2
    assert [p[1] for p in hub.published] == ["a", "b"]


def test_trigger_info(hub: FakeHub) -> None:
    response = post_event(hub, channels=["presence-foo", "public", "cold"],
                          info="user_count,subscription_count")
    assert assert_json(response) == {"channels": {
        "presence-foo": {"user_count": 2, "subscription_count": 3},
        "public": {"subscription_count": 5},
        "cold": {"subscription_count": 0}}}
    assert response.broadcasts == 3
    response = post_event(hub, channels=["public"], info="user_count")
    assert assert_json(response) == {"channels": {"public": {}}}


def test_trigger_allows_any_event_name_and_server_to_user_channels(hub: FakeHub) -> None:
    assert post_event(hub, name="App\\Events\\Foo", channels=["#server-to-user-7"]).status == 200
    assert post_event(hub, name="client-typing").status == 200
    assert post_event(hub, name="x" * 200).status == 200
    assert [p[1:3] for p in hub.published] == [("#server-to-user-7", "App\\Events\\Foo"),
                                               ("public", "client-typing"), ("public", "x" * 200)]


def test_trigger_single_encrypted_channel(hub: FakeHub) -> None:
    assert post_event(hub, channels=["private-encrypted-a"]).status == 200


@pytest.mark.parametrize(("body", "message"), [
    (b"", "Request body required: send a JSON object with Content-Type: application/json"),
    (b"[1]", "Request body must be a JSON object"),
    (b'"x"', "Request body must be a JSON object"),
    (b'{"name": ', None),
    (b'{"name": NaN}', None),
    (b"\xff", None),
])
def test_trigger_invalid_json_is_400(hub: FakeHub, body: bytes, message: str | None) -> None:
    response = call(hub, "POST", "/apps/3/events", body)
    assert response.status == 400
    if message is None:
        assert response.text.startswith("Request body is not valid JSON: ")
    else:
        assert response.text == message


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({"name": None}, 400, "name required: a non-empty string"),
    ({"name": ""}, 400, "name required: a non-empty string"),
    ({"name": 5}, 400, "name required: a non-empty string"),
    ({"name": "x" * 201}, 400, "Event name too long: 201 characters, the limit is 200"),
    ({"data": None}, 400, "data required: a string (JSON-encode objects before sending)"),
    ({"data": {"a": 1}}, 400, "data required: a string (JSON-encode objects before sending)"),
    ({"data": "é" * 5121}, 413, "Event data too large: 10242 bytes, the limit is 10240"),
    ({"channels": None}, 400, "channels required: a list of 1 to 100 channel names"),
    ({"channels": "public"}, 400, "channels must be a list of channel names"),
    ({"channels": []}, 400, "channels must name at least one channel"),
    ({"channels": [f"c{i}" for i in range(101)]}, 400, "Too many channels: 101, the limit is 100 per event"),
    ({"channel": "a"}, 400, "Send either channels (a list) or channel (a string), not both"),
    ({"channels": ["bad name"]}, 400,
     "Invalid channel name 'bad name': only letters, digits and _ - = @ , . ; are allowed ('#' is reserved)"),
    ({"channels": ["#private"]}, 400,
     "Invalid channel name '#private': only letters, digits and _ - = @ , . ; are allowed ('#' is reserved)"),
    ({"channels": [7]}, 400, "Channel name must be a non-empty string"),
    ({"channels": ["c" * 201]}, 400, "Channel name too long: 201 characters, the limit is 200"),
    ({"channels": ["public", "private-encrypted-a"]}, 400,
     "Cannot publish to several channels when one is private-encrypted-: send one request per encrypted "
     "channel"),
    ({"socket_id": "123"}, 400, "Invalid socket_id '123': expected digits.digits such as \"1234.5678\""),
    ({"socket_id": "1.2\n"}, 400, "Invalid socket_id '1.2\\n': expected digits.digits such as \"1234.5678\""),
    ({"socket_id": "\u0661.\u0662"}, 400,  # Arabic-Indic digits: \d would take them
     "Invalid socket_id '\u0661.\u0662': expected digits.digits such as \"1234.5678\""),
    ({"socket_id": 1.2}, 400, "Invalid socket_id 1.2: expected digits.digits such as \"1234.5678\""),
    ({"info": "occupied"}, 400,
     "Unknown info attribute 'occupied': use one of subscription_count, user_count"),
    ({"info": ["user_count"]}, 400,
     'info must be a comma-separated string such as "user_count,subscription_count"'),
])
def test_trigger_validation(hub: FakeHub, fields: dict[str, Any], status: int, message: str) -> None:
    payload: dict[str, Any] = {"name": "ev", "channels": ["public"], "data": "{}", **fields}
    payload = {k: v for k, v in payload.items() if v is not None}
    response = call(hub, "POST", "/apps/3/events", payload)
    assert_error(response, status, message)
    assert response.app == APP
    assert hub.published == []


def test_errors_never_echo_huge_inputs(hub: FakeHub) -> None:
    response = post_event(hub, socket_id="9" * 100_000)
    assert response.status == 400
    assert len(response.text) < 200
    response = post_event(hub, info="x" * 100_000)
    assert response.status == 400
    assert len(response.text) < 200


def test_trigger_limits_come_from_the_app_settings(hub: FakeHub) -> None:
    ok = post_event(hub, app=SMALL, name="e" * 5, data="12345678", channels=["a" * 12, "b"])
    assert ok.status == 200
    assert_error(post_event(hub, app=SMALL, data="123456789"), 413,
                 "Event data too large: 9 bytes, the limit is 8")
    assert_error(post_event(hub, app=SMALL, channels=["a", "b", "c"]), 400,
                 "Too many channels: 3, the limit is 2 per event")
    assert_error(post_event(hub, app=SMALL, name="e" * 6), 400,
                 "Event name too long: 6 characters, the limit is 5")
    assert_error(post_event(hub, app=SMALL, channels=["a" * 13]), 400,
                 "Channel name too long: 13 characters, the limit is 12")


# --- POST batch_events -----------------------------------------------------------------------------------

def test_batch_info(hub: FakeHub) -> None:
    body = {"batch": [
        {"channel": "presence-foo", "name": "a", "data": "1", "info": "user_count,subscription_count"},
        {"channel": "public", "name": "b", "data": "2"},
        {"channel": "public", "name": "c", "data": "3", "info": "subscription_count"},
    ]}
    response = call(hub, "POST", "/apps/3/batch_events", body)
    assert assert_json(response) == {"batch": [{"user_count": 2, "subscription_count": 3}, {},
                                               {"subscription_count": 5}]}
    assert response.broadcasts == 3


def test_empty_batch_publishes_nothing(hub: FakeHub) -> None:
    response = call(hub, "POST", "/apps/3/batch_events", {"batch": []})
    assert assert_json(response) == {}
    assert response.broadcasts == 0


@pytest.mark.parametrize(("body", "status", "message"), [
    ({}, 400, 'batch required: send {"batch": [{"channel": ..., "name": ..., "data": ...}, ...]}'),
    ({"batch": {}}, 400, 'batch required: send {"batch": [{"channel": ..., "name": ..., "data": ...}, ...]}'),
    ({"batch": [{"channel": "a", "name": "e", "data": ""}] * 11}, 400,
     "Batch too large: 11 events, the limit is 10 per request"),
    ({"batch": [{"channel": "a", "name": "e", "data": ""}, "x"]}, 400,
     "batch[1]: each event must be a JSON object"),
    ({"batch": [{"name": "e", "data": ""}]}, 400, "batch[0]: channel required"),
    ({"batch": [{"channels": ["a"], "name": "e", "data": ""}]}, 400,
     "batch[0]: batch events take a single channel (a string), not channels"),
    ({"batch": [{"channel": "a", "name": "e", "data": ""}, {"channel": "a", "name": "e", "data": 1}]}, 400,
     "batch[1]: data required: a string (JSON-encode objects before sending)"),
    ({"batch": [{"channel": "a", "name": "e", "data": "x" * 10241}]}, 413,
     "batch[0]: Event data too large: 10241 bytes, the limit is 10240"),
    ({"batch": [{"channel": "a b", "name": "e", "data": ""}]}, 400,
     "batch[0]: Invalid channel name 'a b': only letters, digits and _ - = @ , . ; are allowed "
     "('#' is reserved)"),
    ({"batch": [{"channel": "a", "name": "e", "data": "", "socket_id": "x"}]}, 400,
     "batch[0]: Invalid socket_id 'x': expected digits.digits such as \"1234.5678\""),
])
def test_batch_validation_publishes_nothing(hub: FakeHub, body: Any, status: int, message: str) -> None:
    assert_error(call(hub, "POST", "/apps/3/batch_events", body), status, message)
    assert hub.published == []


def test_batch_size_limit_from_settings(hub: FakeHub) -> None:
    item = {"channel": "a", "name": "e", "data": ""}
    assert call(hub, "POST", "/apps/6/batch_events", {"batch": [item] * 2}, app=SMALL).status == 200
    assert_error(call(hub, "POST", "/apps/6/batch_events", {"batch": [item] * 3}, app=SMALL), 400,
                 "Batch too large: 3 events, the limit is 2 per request")
