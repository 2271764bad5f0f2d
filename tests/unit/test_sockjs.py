"""The sans-I/O half of pusher-js' HTTP transports: paths, framing, xhr_send bodies (vask.protocol.sockjs)."""

from __future__ import annotations

import json

import pytest

from vask.protocol import frames, sockjs


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_unwrap_gives_back_what_ws_frame_wrapped(size: int) -> None:
    payloads = [b"x" * size, b'{"event":"a"}', "é€😀".encode()]
    joined = b"".join(frames.ws_frame(p) for p in payloads)
    assert sockjs.unwrap_ws_frames(joined) == payloads


def test_array_frame_is_what_pusher_js_parses() -> None:
    messages = [frames.encode("e", '{"a":"line\\nbreak"}', "c"), frames.encode_error(4100, "slow é")]
    line = sockjs.array_frame(messages)
    assert line.startswith(b"a[") and line.endswith(b"\n") and line.count(b"\n") == 1  # one line per frame
    # pusher-js: JSON.parse(line.slice(1)), then each item is a message as a WebSocket would carry it
    assert [json.loads(item) for item in json.loads(line[1:])] == [json.loads(m) for m in messages]
    assert sockjs.close_frame(4200, 'bye "now"') == b'c[4200,"bye \\"now\\""]\n'


@pytest.mark.parametrize(("path", "target"), [
    ("/pusher/app/key/123/abcdefgh/xhr_streaming", sockjs.Target("key", "123/abcdefgh", "xhr_streaming")),
    ("/app/key/1/x/xhr", sockjs.Target("key", "1/x", "xhr")),  # httpPath ""
    ("/a/b/app/k-1/999/0v/xhr_send", sockjs.Target("k-1", "999/0v", "xhr_send")),
])
def test_paths(path: str, target: sockjs.Target) -> None:
    assert sockjs.is_transport_path(path)
    assert sockjs.parse_path(path) == target


@pytest.mark.parametrize("path", ["/pusher/app/key/1/ab.c/xhr", "/pusher/app/key//abc/xhr",
                                  "/pusher/app/key/1/" + "a" * 33 + "/xhr", "/pusher/apps/key/1/abc/xhr",
                                  "/pusher/app/key/1/2/abc/xhr"])
def test_bad_paths(path: str) -> None:
    with pytest.raises(sockjs.BadPath):
        sockjs.parse_path(path)


def test_send_bodies() -> None:
    assert sockjs.parse_send(b"[]") == []
    assert sockjs.parse_send(b'["{\\"event\\":\\"x\\"}"]') == ['{"event":"x"}']
    for bad in (b"", b"{", b"{}", b'["a", 1]', b'"a"'):
        with pytest.raises(sockjs.BadSend):
            sockjs.parse_send(bad)


def test_request_number() -> None:
    assert sockjs.request_number("t=17&n=42") == 42
    assert sockjs.request_number("n=") is None
    assert sockjs.request_number("t=1") is None
    assert sockjs.request_number("n=-1") is None
    assert sockjs.request_number("n=" + "9" * 16) is None


def test_a_broadcast_is_framed_for_http_once() -> None:
    from vask.server.xhr_session import encode

    data = frames.ws_frame(frames.encode("e", "é", "c"))
    line, chunk, chars = encode(data)
    assert encode(data) is encode(data)  # the same bytes object (one publish, many sessions): computed once
    assert line == sockjs.array_frame([frames.encode("e", "é", "c")])
    assert chunk == b"%x\r\n%b\r\n" % (len(line), line)
    assert chars == len(line.decode())  # what JavaScript's responseText.length counts
    other = frames.ws_frame(frames.encode("e", "x", "c"))
    assert encode(other)[0] != line
