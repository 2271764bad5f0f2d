"""Encoding of server frames, WebSocket framing, decoding of client frames (pusher-protocol.md §1.2-1.4)."""

from __future__ import annotations

import json

import pytest
from helpers import decode_ws

from vask.protocol.frames import (
    BadMessage,
    ClientMessage,
    data_object,
    decode,
    encode,
    encode_error,
    encode_internal,
    ws_frame,
)

# --- encode --------------------------------------------------------------------------------------------------


def test_encode_key_order_event_data_channel_user_id() -> None:
    assert encode("ev", "d", "ch", "u1") == b'{"event":"ev","data":"d","channel":"ch","user_id":"u1"}'
    assert encode("ev", "d", "ch") == b'{"event":"ev","data":"d","channel":"ch"}'
    assert encode("ev", "d") == b'{"event":"ev","data":"d"}'
    assert encode("ev", "d", user_id="7") == b'{"event":"ev","data":"d","user_id":"7"}'


def test_encode_keeps_data_verbatim() -> None:
    # a published data string is not re-encoded or parsed
    assert encode("e", '{"a": 1}', "c") == b'{"event":"e","data":"{\\"a\\": 1}","channel":"c"}'
    assert encode("e", "plain string") == b'{"event":"e","data":"plain string"}'
    # a client event's object data stays an object
    assert encode("client-x", {"m": [1, 2]}, "private-c") == \
        b'{"event":"client-x","data":{"m":[1,2]},"channel":"private-c"}'
    assert encode("e", None) == b'{"event":"e","data":null}'
    assert json.loads(encode("e", "é✓")) == {"event": "e", "data": "é✓"}


def test_encode_internal_double_encodes() -> None:
    assert encode_internal("pusher_internal:subscription_succeeded", {}, "private-foo") == \
        b'{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"private-foo"}'
    assert encode_internal("pusher:connection_established", {"socket_id": "1234.56788", "activity_timeout": 120}) \
        == b'{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1234.56788\\",' \
           b'\\"activity_timeout\\":120}"}'
    frame = json.loads(encode_internal("x", {"presence": {"count": 1, "ids": ["1"]}}, "presence-a"))
    assert isinstance(frame["data"], str)
    assert json.loads(frame["data"]) == {"presence": {"count": 1, "ids": ["1"]}}


def test_encode_error_is_an_object() -> None:
    assert encode_error(None, "Existing subscription to channel presence-channel") == \
        b'{"event":"pusher:error","data":{"code":null,"message":"Existing subscription to channel presence-channel"}}'
    assert encode_error(4301, "x") == b'{"event":"pusher:error","data":{"code":4301,"message":"x"}}'


# --- ws_frame --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("length", "header"), [
    (0, b"\x81\x00"),
    (1, b"\x81\x01"),
    (125, b"\x81\x7d"),
    (126, b"\x81\x7e\x00\x7e"),
    (127, b"\x81\x7e\x00\x7f"),
    (65535, b"\x81\x7e\xff\xff"),
    (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    (70000, b"\x81\x7f" + (70000).to_bytes(8, "big")),
])
def test_ws_frame_lengths(length: int, header: bytes) -> None:
    payload = bytes([0x61 + i % 26 for i in range(length)])
    framed = ws_frame(payload)
    assert framed == header + payload
    assert decode_ws(framed) == [payload]


def test_decode_ws_splits_consecutive_frames() -> None:
    parts = [b"", b"x" * 125, b"y" * 126, b"z" * 65536, b"{}"]
    assert decode_ws(b"".join(ws_frame(p) for p in parts)) == parts


# --- decode ---------------------------------------------------------------------------------------------------

def test_decode_subscribe_with_object_data() -> None:
    message = decode(b'{"event":"pusher:subscribe","data":{"auth":"","channel":"chatrooms.5432132"}}')
    assert message == ClientMessage("pusher:subscribe", {"auth": "", "channel": "chatrooms.5432132"}, None)


def test_decode_client_event_and_str_payload() -> None:
    message = decode('{"event":"client-greeting","data":{"message":"hello"},"channel":"private-foo"}')
    assert message.event == "client-greeting"
    assert message.data == {"message": "hello"}
    assert message.channel == "private-foo"
    assert decode(b'{"event":"pusher:ping"}') == ClientMessage("pusher:ping", None, None)


@pytest.mark.parametrize("payload", [b"", b"not json", b"{", b"{'event':'x'}", b"\xff\xfe", b'{"event":"x"}x'])
def test_decode_not_json(payload: bytes) -> None:
    with pytest.raises(BadMessage, match=r"^Invalid JSON"):
        decode(payload)


@pytest.mark.parametrize("payload", [b"[]", b'["pusher:ping"]', b'"pusher:ping"', b"1", b"null", b"true"])
def test_decode_not_an_object(payload: bytes) -> None:
    with pytest.raises(BadMessage, match="expected a JSON object"):
        decode(payload)


@pytest.mark.parametrize("payload", [b"{}", b'{"data":{}}', b'{"event":""}', b'{"event":null}', b'{"event":1}',
                                     b'{"event":["x"]}', b'{"event":{}}'])
def test_decode_missing_or_bad_event(payload: bytes) -> None:
    with pytest.raises(BadMessage, match="'event' must be a non-empty string"):
        decode(payload)


@pytest.mark.parametrize("channel", [b"1", b"{}", b"[]", b"true"])
def test_decode_channel_not_a_string(channel: bytes) -> None:
    with pytest.raises(BadMessage, match="'channel' must be a string"):
        decode(b'{"event":"client-x","channel":' + channel + b"}")


def test_decode_null_channel_is_absent() -> None:
    assert decode(b'{"event":"client-x","channel":null}').channel is None


def test_data_object() -> None:
    assert data_object({"channel": "a"}) == {"channel": "a"}
    # some clients send the data JSON-encoded as a string
    assert data_object('{"channel":"a"}') == {"channel": "a"}
    assert data_object("") is None
    assert data_object("not json") is None
    assert data_object('"a string"') is None
    assert data_object("[1]") is None
    assert data_object(None) is None
    assert data_object([{"channel": "a"}]) is None
    assert data_object(5) is None
