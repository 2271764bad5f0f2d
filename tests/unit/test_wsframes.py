"""The server's WebSocket frame codec (vask.server.wsframes), checked against websockets' ServerProtocol, which
it replaced after the handshake: for any stream of client frames, in any split, both must yield the same frames,
answer with the same bytes (pongs, the close echo, the failing close code) and ask for the TCP close at the
same point."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from vask.server.wsframes import CLOSE, PING, PONG, TEXT, ServerFrames, close_payload, unmask

LIMIT = 200


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True,
          mask: bytes = b"\x01\x02\x03\x04", length: int | None = None) -> bytes:
    """A client frame as raw bytes; ``length`` overrides the length field (a lie about the payload)."""
    size = len(payload) if length is None else length
    head = bytes((0x80 * fin | rsv << 4 | opcode,))
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes((bit | size,))
    elif size < 65536:
        head += bytes((bit | 126,)) + size.to_bytes(2, "big")
    else:
        head += bytes((bit | 127,)) + size.to_bytes(8, "big")
    if not masked:
        return head + payload
    return head + mask + unmask(payload, mask)


def outcome(codec: ServerFrames | ServerProtocol, chunks: list[bytes]) -> tuple[list[tuple[int, bytes, bool]],
                                                                              list[bytes]]:
    frames: list[tuple[int, bytes, bool]] = []
    output: list[bytes] = []
    for chunk in chunks:
        codec.receive_data(chunk)
        received: list[Any] = list(codec.events_received())  # ours, or websockets' Frame objects
        frames += [(int(f.opcode), bytes(f.data), f.fin) for f in received]
        output += codec.data_to_send()
    return frames, output


def close_codes(output: list[bytes]) -> list[int | None]:
    """The close codes written (None: a close frame without one), and -1 for the TCP close."""
    codes: list[int | None] = []
    for chunk in output:
        if chunk == b"":
            codes.append(-1)
        elif chunk[0] & 0x0F == CLOSE:
            codes.append(int.from_bytes(chunk[2:4], "big") if chunk[1] >= 2 else None)
    return codes


def same(chunks: list[bytes]) -> None:
    ours = outcome(ServerFrames(LIMIT), chunks)
    theirs = outcome(ServerProtocol(max_size=LIMIT, state=OPEN), chunks)
    assert ours[0] == theirs[0]
    assert close_codes(ours[1]) == close_codes(theirs[1])
    # Pongs and the echo of a peer's close are byte for byte the same; failure reasons may be worded otherwise.
    assert [c for c in ours[1] if c and c[0] & 0x0F == PONG] == [c for c in theirs[1] if c and c[0] & 0x0F == PONG]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# One frame at a time: a valid one mostly, sometimes with one thing wrong with it.
_codes = st.sampled_from([1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1014, 1015, 1016, 2999, 3000,
                          4999, 5000])
_close = st.one_of(st.just(b""), st.just(b"\x03"), st.builds(lambda code, reason: code.to_bytes(2, "big") + reason,
                                                           _codes, st.sampled_from([b"", b"bye", b"\xce\xba",
                                                                                    b"\xff\xfe", b"r" * 123])))
_one = st.one_of(
    st.builds(lambda data, fin: frame(TEXT, data, fin=fin), st.binary(max_size=60), st.booleans()),
    st.builds(lambda data, fin: frame(0x2, data, fin=fin), st.binary(max_size=60), st.booleans()),
    st.builds(lambda data, fin: frame(0x0, data, fin=fin), st.binary(max_size=60), st.booleans()),
    st.builds(lambda data: frame(PING, data), st.binary(max_size=125)),
    st.builds(lambda data: frame(PONG, data), st.binary(max_size=30)),
    st.builds(lambda data: frame(CLOSE, data), _close),
    st.builds(lambda op: frame(op, b"x"), st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xF])),
    st.builds(lambda rsv: frame(TEXT, b"x", rsv=rsv), st.integers(1, 7)),
    st.just(frame(TEXT, b"x", masked=False)),
    st.just(frame(PING, b"x", fin=False)),
    st.just(frame(PING, b"p" * 126)),
    st.builds(lambda n: frame(0x2, b"z" * n), st.integers(LIMIT - 2, LIMIT + 2)),
    st.builds(lambda mask: frame(TEXT, b"masked with this key", mask=mask), st.binary(min_size=4, max_size=4)),
)


@settings(max_examples=int(os.environ.get("VASK_FUZZ_EXAMPLES", "400")), deadline=None)
@given(st.lists(_one, min_size=1, max_size=8), st.lists(st.integers(0, 2000), max_size=6))
# The limit is on the whole message (CI found both): a frame over what is left of it fails 1009 even when it is
# also out of sequence, and so does a control frame inside a message.
@example([frame(TEXT, b"\x00", fin=False), frame(0x2, b"z" * LIMIT)], [])
@example([frame(TEXT, b"\x00" * 38, fin=False), frame(0x0, b"\x00" * 37, fin=False), frame(PING, b"p" * 126)], [])
@example([frame(TEXT, b"x" * 150, fin=False), frame(0x0, b"x" * 60)], [])
@example([frame(TEXT, b"x" * 150, fin=False), frame(0x0, b"x" * 50)], [])
@example([frame(TEXT, b"x" * (LIMIT + 1), rsv=1)], [])
def test_same_as_websockets(frames: list[bytes], cuts: list[int]) -> None:
    same(split(b"".join(frames), cuts))


def test_byte_by_byte() -> None:
    stream = frame(TEXT, b"hel", fin=False) + frame(PING, b"!") + frame(0x0, b"lo") + frame(CLOSE, close_payload(1000,
                                                                                                               "ok"))
    same([stream[i:i + 1] for i in range(len(stream))])


def test_long_lengths() -> None:
    codec = ServerFrames(1 << 20)
    big = bytes(range(256)) * 300  # a 16-bit length field
    huge = b"h" * 70000  # a 64-bit one
    codec.receive_data(frame(0x2, big) + frame(0x2, huge))
    assert [f.data for f in codec.events_received()] == [big, huge]
    assert codec.data_to_send() == []


def test_oversized_frame_fails_before_its_payload() -> None:
    codec = ServerFrames(LIMIT)
    codec.receive_data(frame(0x2, b"", length=1 << 40)[:14])  # the header only: a terabyte announced
    assert close_codes(codec.data_to_send()) == [1009, -1]
    codec.receive_data(b"more")
    assert codec.events_received() == [] and codec.data_to_send() == []


def test_partial_frame_is_pending() -> None:
    codec = ServerFrames(LIMIT)
    data = frame(TEXT, b"{}")
    codec.receive_data(data[:3])
    assert codec.pending and codec.events_received() == []
    codec.receive_data(data[3:])
    assert not codec.pending and [f.data for f in codec.events_received()] == [b"{}"]


def test_server_close_then_peer_close() -> None:
    codec = ServerFrames(LIMIT)
    codec.send_close(4009, "Connection is unauthorized")
    assert codec.data_to_send() == [bytes((0x88, 28)) + (4009).to_bytes(2, "big") + b"Connection is unauthorized"]
    codec.send_close(1000, "again")  # closing already: nothing more is sent
    assert codec.data_to_send() == []
    codec.receive_data(frame(TEXT, b"late"))  # still read while the peer has not answered
    assert [f.data for f in codec.events_received()] == [b"late"]
    codec.receive_data(frame(CLOSE, close_payload(4009, "")))
    assert codec.data_to_send() == [b""]  # no second close frame: the handshake is over, close TCP


def test_close_reason_cut_on_a_character() -> None:
    payload = close_payload(4200, "é" * 100)
    assert len(payload) <= 125
    assert payload[2:].decode().endswith("...")
