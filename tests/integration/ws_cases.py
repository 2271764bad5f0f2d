"""An Autobahn-style WebSocket conformance run against /app/{key}, over raw sockets.

The Autobahn testsuite (wstest) is Python 2 only, so this is our own run of its case categories: 1 framing,
2 ping/pong, 3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 9 limits (up to Vask's
frame limit), 12/13 compression. Vask is not an echo server: where Autobahn checks an echo, a case checks
that the server answers the message (a pusher:pong for a pusher:ping, a pusher:error for other text) and
keeps the connection. Results are OK, FAILED, NON-STRICT (right in the end, not as soon as the RFC wants)
or UNIMPLEMENTED.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.integration.wsraw import RawSocket, close_payload, frame, text

OK, FAILED, NON_STRICT, UNIMPLEMENTED = "OK", "FAILED", "NON-STRICT", "UNIMPLEMENTED"
PING = json.dumps({"event": "pusher:ping", "data": {}}).encode()
TEXT, BINARY, CLOSE, PINGOP, PONGOP, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


@dataclass
class Case:
    id: str
    title: str
    run: Callable[[RawSocket], tuple[str, str]]
    full_only: bool = False


@dataclass
class Result:
    id: str
    title: str
    status: str
    detail: str
    seconds: float


def ping_of(size: int) -> bytes:
    """A pusher:ping message of exactly ``size`` bytes (its data string pads it)."""
    pad = max(size - len(json.dumps({"event": "pusher:ping", "data": ""})), 0)
    return json.dumps({"event": "pusher:ping", "data": "x" * pad}).encode()


# -- checks ------------------------------------------------------------------------------------------------------

def answered(c: RawSocket, timeout: float = 3.0) -> tuple[str, str]:
    """The server answers a pusher:ping with a pusher:pong: the connection is alive and in order."""
    c.send(text(PING))
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = c.read_frame(max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            return FAILED, "no answer to a pusher:ping"
        if got is None:
            return FAILED, "the server closed the connection"
        if got.opcode == CLOSE:
            return FAILED, f"the server closed with {close_code(got.payload)}"
        if got.opcode == TEXT and json.loads(got.payload).get("event") == "pusher:pong":
            return OK, "answered"


def text_reply(c: RawSocket, timeout: float = 3.0) -> tuple[str, str]:
    """The next text message is any Pusher answer (pong or error); the connection stays open."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = c.read_frame(max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            return FAILED, "no answer to the message"
        if got is None or got.opcode == CLOSE:
            return FAILED, "the server closed the connection"
        if got.opcode == TEXT:
            event = json.loads(got.payload).get("event")
            status, detail = answered(c)
            return status, f"answered {event}; {detail}"


def close_code(payload: bytes) -> int:
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005


def fails_with(*codes: int, fast: bool = True, timeout: float = 3.0) -> Callable[[RawSocket], tuple[str, str]]:
    """The server must close with one of ``codes`` and then close TCP (Autobahn: "fail the connection")."""
    def check(c: RawSocket) -> tuple[str, str]:
        code, tcp_closed = c.close_code(timeout)
        if code is None and tcp_closed:
            return NON_STRICT, "TCP closed without a close frame"
        if code not in codes:
            return FAILED, f"expected close {codes}, got {code}"
        if not tcp_closed:
            return NON_STRICT, f"closed with {code} but TCP stays open"
        return OK, f"closed with {code}"
    return check


def sent(*chunks: bytes, pause: float = 0.0) -> Callable[[RawSocket], None]:
    def send(c: RawSocket) -> None:
        for chunk in chunks:
            try:
                c.send(chunk)
            except OSError:
                return
            if pause:
                time.sleep(pause)
    return send


def case(id: str, title: str, send: Callable[[RawSocket], None],
         check: Callable[[RawSocket], tuple[str, str]], full_only: bool = False) -> Case:
    def run(c: RawSocket) -> tuple[str, str]:
        send(c)
        return check(c)
    return Case(id, title, run, full_only)


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def pongs(payload: bytes, count: int = 1) -> Callable[[RawSocket], tuple[str, str]]:
    def check(c: RawSocket) -> tuple[str, str]:
        got_pongs = 0
        deadline = time.monotonic() + 3
        while got_pongs < count:
            try:
                got = c.read_frame(max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                return FAILED, f"{got_pongs} of {count} pongs"
            if got is None or got.opcode == CLOSE:
                return FAILED, "closed instead of answering the ping"
            if got.opcode == PONGOP:
                if got.payload != payload:
                    return FAILED, "pong payload differs from the ping's"
                got_pongs += 1
        return answered(c)
    return check


# -- the cases ---------------------------------------------------------------------------------------------------

def build(frame_limit: int) -> list[Case]:
    cases: list[Case] = []
    add = cases.append
    # 1.x framing: text (as pusher:ping) and binary messages of the boundary lengths.
    for i, size in enumerate([0, 125, 126, 127, 128, 65535, 65536], 1):
        if size > frame_limit:
            continue
        payload = ping_of(size) if size >= len(PING) else b"" if size == 0 else b"x" * size
        check = answered if size >= len(PING) else text_reply
        add(case(f"1.1.{i}", f"text message, {size} bytes", sent(text(payload)),
                 check if size else text_reply))
    for i, size in enumerate([0, 125, 126, 127, 128, 65535], 1):
        add(case(f"1.2.{i}", f"binary message, {size} bytes (answered with pusher:error)",
                 sent(frame(BINARY, b"\x00" * size)), text_reply))
    # 2.x ping/pong
    add(case("2.1", "ping, no payload", sent(frame(PINGOP)), pongs(b"")))
    add(case("2.2", "ping, text payload", sent(frame(PINGOP, b"Hello, world!")), pongs(b"Hello, world!")))
    add(case("2.3", "ping, binary payload", sent(frame(PINGOP, b"\x00\xff\xfe\xfd")), pongs(b"\x00\xff\xfe\xfd")))
    add(case("2.4", "ping, 125 bytes", sent(frame(PINGOP, b"\xfe" * 125)), pongs(b"\xfe" * 125)))
    add(case("2.5", "ping, 126 bytes (too long)", sent(frame(PINGOP, b"\xfe" * 126)), fails_with(1002)))
    add(case("2.6", "ping, 125 bytes sent byte by byte", sent(*bytewise(frame(PINGOP, b"\xfe" * 125)), pause=0.002),
             pongs(b"\xfe" * 125)))
    add(case("2.7", "unsolicited pong, no payload", sent(frame(PONGOP)), answered))
    add(case("2.8", "unsolicited pong, payload", sent(frame(PONGOP, b"unsolicited")), answered))
    add(case("2.9", "unsolicited pong, then ping", sent(frame(PONGOP, b"a"), frame(PINGOP, b"b")), pongs(b"b")))
    add(case("2.10", "10 pings", sent(*[frame(PINGOP, b"p") for _ in range(10)]), pongs(b"p", 10)))
    add(case("2.11", "10 pings, byte by byte", sent(*bytewise(b"".join(frame(PINGOP, b"p") for _ in range(10)))),
             pongs(b"p", 10)))
    # 3.x reserved bits (no extension is negotiated, so any RSV bit fails the connection)
    for i, (rsv, opcode) in enumerate([(1, TEXT), (2, TEXT), (3, TEXT), (4, BINARY), (5, PINGOP), (6, CLOSE),
                                       (7, TEXT)], 1):
        add(case(f"3.{i}", f"RSV={rsv} on opcode {opcode}",
                 sent(frame(opcode, PING if opcode == TEXT else b"", rsv=rsv)), fails_with(1002)))
    add(case("3.8", "valid text, then RSV=1 text, then ping", sent(text(PING), text(PING, rsv=1), frame(PINGOP)),
             lambda c: fails_with(1002)(c)))
    # 4.x opcodes
    for i, opcode in enumerate([3, 4, 5, 6, 7], 1):
        add(case(f"4.1.{i}", f"reserved data opcode {opcode}", sent(frame(opcode, b"x")), fails_with(1002)))
    for i, opcode in enumerate([0xB, 0xC, 0xD, 0xE, 0xF], 1):
        add(case(f"4.2.{i}", f"reserved control opcode {opcode:#x}", sent(frame(opcode, b"x")), fails_with(1002)))
    add(case("4.2.6", "valid text, reserved opcode, ping", sent(text(PING), frame(0xB), frame(PINGOP)),
             fails_with(1002)))
    # 5.x fragmentation
    half = len(PING) // 2
    a, b = PING[:half], PING[half:]
    add(case("5.1", "fragmented ping", sent(frame(PINGOP, b"a", fin=False), frame(CONT, b"b")), fails_with(1002)))
    add(case("5.2", "fragmented pong", sent(frame(PONGOP, b"a", fin=False), frame(CONT, b"b")), fails_with(1002)))
    add(case("5.3", "text in 2 fragments", sent(text(a, fin=False), frame(CONT, b)), answered_after_text()))
    add(case("5.4", "text in 2 fragments, byte by byte",
             sent(*bytewise(text(a, fin=False) + frame(CONT, b))), answered_after_text()))
    add(case("5.5", "text in 2 fragments, fragment by fragment with pauses",
             sent(text(a, fin=False), frame(CONT, b), pause=0.1), answered_after_text()))
    add(case("5.6", "text in 2 fragments, a ping between them",
             sent(text(a, fin=False), frame(PINGOP, b"mid"), frame(CONT, b)), pongs(b"mid")))
    add(case("5.7", "as 5.6, byte by byte",
             sent(*bytewise(text(a, fin=False) + frame(PINGOP, b"mid") + frame(CONT, b))), pongs(b"mid")))
    add(case("5.8", "as 5.6, frame by frame with pauses",
             sent(text(a, fin=False), frame(PINGOP, b"mid"), frame(CONT, b), pause=0.1), pongs(b"mid")))
    add(case("5.9", "continuation (fin) with nothing to continue", sent(frame(CONT, b"x"), text(PING)),
             fails_with(1002)))
    add(case("5.10", "as 5.9, byte by byte", sent(*bytewise(frame(CONT, b"x") + text(PING))), fails_with(1002)))
    add(case("5.12", "continuation (not fin) with nothing to continue", sent(frame(CONT, b"x", fin=False)),
             fails_with(1002)))
    add(case("5.13", "as 5.12, byte by byte", sent(*bytewise(frame(CONT, b"x", fin=False))), fails_with(1002)))
    add(case("5.15", "text fragment, continuation, then a new text fragment before the end",
             sent(text(a, fin=False), frame(CONT, b"x", fin=False), text(b"y", fin=False)), fails_with(1002)))
    add(case("5.17", "text fragment, then a final text frame (not a continuation)",
             sent(text(a, fin=False), text(b)), fails_with(1002)))
    add(case("5.18", "as 5.17 with a ping between", sent(text(a, fin=False), frame(PINGOP), text(b)),
             fails_with(1002)))
    add(case("5.19", "text in 5 fragments with 2 pings between",
             sent(*fragments(PING, 5, pings_after=(1, 3)), pause=0.05), pongs(b"ping", 2)))
    add(case("5.20", "as 5.19, byte by byte",
             sent(*bytewise(b"".join(fragments(PING, 5, pings_after=(1, 3))))), pongs(b"ping", 2)))
    # 6.x UTF-8
    for i, sample in enumerate(VALID_UTF8, 1):
        message = pusher_ping_with(sample)
        add(case(f"6.2.{i}", f"valid UTF-8 {sample[:12]!r} in one frame", sent(text(message)), text_reply))
        add(case(f"6.3.{i}", f"valid UTF-8 {sample[:12]!r} fragmented at every byte",
                 sent(*[frame(TEXT if j == 0 else CONT, message[j:j + 1], fin=j == len(message) - 1)
                        for j in range(len(message))]), text_reply, full_only=i > 3))
    for i, bad in enumerate(INVALID_UTF8, 1):
        message = b'{"event":"pusher:ping","data":"' + bad + b'"}'
        add(case(f"6.4.{i}", f"invalid UTF-8 {bad!r} in one frame", sent(text(message)), fails_with(1007)))
        add(case(f"6.5.{i}", f"invalid UTF-8 {bad!r} fragmented at every byte",
                 sent(*[frame(TEXT if j == 0 else CONT, message[j:j + 1], fin=j == len(message) - 1)
                        for j in range(len(message))]), fails_with(1007), full_only=i > 4))
    add(Case("6.6.1", "fail fast: invalid UTF-8 in the first fragment, the message never finished", fail_fast))
    add(case("6.7.1", "invalid UTF-8 in a binary message is not checked",
             sent(frame(BINARY, b"\xff\xfe")), text_reply))
    # 7.x close handling
    add(case("7.1.1", "text, then close 1000", sent(text(PING), frame(CLOSE, close_payload(1000))),
             closes_back(1000)))
    add(case("7.1.2", "close twice", sent(frame(CLOSE, close_payload(1000)), frame(CLOSE, close_payload(1000))),
             closes_back(1000)))
    add(case("7.1.3", "close, then ping: no pong", sent(frame(CLOSE, close_payload(1000)), frame(PINGOP, b"x")),
             closes_back(1000, no_pong=True)))
    add(case("7.1.4", "close, then text: no answer", sent(frame(CLOSE, close_payload(1000)), text(PING)),
             closes_back(1000, no_pong=True)))
    add(case("7.1.5", "text fragment, close, continuation",
             sent(text(a, fin=False), frame(CLOSE, close_payload(1000)), frame(CONT, b)),
             closes_back(1000, no_pong=True, lenient=(1002, "websockets answers a close inside a fragmented "
                                                        "message with 1002 rather than echoing 1000"))))
    add(case("7.1.6", "large text, then close", sent(text(ping_of(min(frame_limit, 60_000))),
                                                     frame(CLOSE, close_payload(1000))), closes_back(1000)))
    add(case("7.3.1", "close with no payload", sent(frame(CLOSE)), closes_back(1005, 1000)))
    add(case("7.3.2", "close with a 1-byte payload", sent(frame(CLOSE, b"\x03")), fails_with(1002)))
    add(case("7.3.3", "close with a code only", sent(frame(CLOSE, close_payload(1000))), closes_back(1000)))
    add(case("7.3.4", "close with code and reason", sent(frame(CLOSE, close_payload(1000, b"bye"))),
             closes_back(1000)))
    add(case("7.3.5", "close with a 123-byte reason", sent(frame(CLOSE, close_payload(1000, b"r" * 123))),
             closes_back(1000)))
    add(case("7.3.6", "close with a 124-byte reason (control frame too long)",
             sent(frame(CLOSE, close_payload(1000, b"r" * 124))), fails_with(1002)))
    add(case("7.5.1", "close reason that is not UTF-8", sent(frame(CLOSE, close_payload(1000, b"\xce\xba\xff"))),
             fails_with(1007, 1002)))
    for i, code in enumerate([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
                              4000, 4999], 1):
        add(case(f"7.7.{i}", f"valid close code {code}", sent(frame(CLOSE, close_payload(code))), closes_back(code)))
    for i, code in enumerate([0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535], 1):
        add(case(f"7.9.{i}", f"invalid close code {code}", sent(frame(CLOSE, close_payload(code))),
                 fails_with(1002)))
    # 9.x limits, up to Vask's frame limit (max_ws_frame_bytes); beyond it, the connection is closed.
    for i, size in enumerate(s for s in [1024, 16 * 1024, 64 * 1024 - 512] if s <= frame_limit):
        add(case(f"9.1.{i + 1}", f"text message of {size} bytes", sent(text(ping_of(size))), answered))
    add(case("9.1.9", f"text message over the limit ({frame_limit + 1} bytes)",
             sent(text(ping_of(frame_limit + 1))), fails_with(1009)))
    add(case("9.2.9", f"binary message over the limit ({frame_limit + 1} bytes)",
             sent(frame(BINARY, b"\x00" * (frame_limit + 1))), fails_with(1009)))
    add(case("9.3.1", "fragmented text over the limit (4 fragments)",
             sent(*fragments(ping_of(frame_limit + 100), 4)), fails_with(1009, 4200)))
    for i, chunk in enumerate([64, 256, 1024, 4096], 1):
        message = ping_of(min(frame_limit - 100, 60_000))
        add(case(f"9.4.{i}", f"60 KB text in {chunk}-byte fragments", sent(*fragments_of(message, chunk)), answered,
                 full_only=i > 1))
        whole = text(message)
        add(case(f"9.6.{i}", f"60 KB text frame in {chunk}-byte TCP chunks",
                 sent(*[whole[j:j + chunk] for j in range(0, len(whole), chunk)]), answered, full_only=i > 1))
    for i, count in enumerate([100, 1000], 1):
        add(Case(f"9.7.{i}", f"{count} pusher:ping messages, round trips", round_trips(count), i > 1))
    # 12/13: permessage-deflate is not negotiated
    add(Case("12.1.1", "permessage-deflate offered", deflate_offered))
    return cases


VALID_UTF8 = ["Hello-µ@ßöäüàá-UTF-8!!", "κόσμε", "\u0080", "\u07ff", "\u0800", "\uffff".replace("\uffff", "\ufffd"),
              "\U00010000", "\U0010ffff", "\ud7ff", "\ue000", "\ufffd", "\U0001f600 emoji"]
INVALID_UTF8 = [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",  # 6.3.1
                b"\x80", b"\xbf", b"\x80\xbf\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",  # overlong
                b"\xf8\x88\x80\x80\x80", b"\xfc\x84\x80\x80\x80\x80", b"\xfe", b"\xff", b"\xfe\xfe\xff\xff",
                b"\xc0 ", b"\xe0\x80", b"\xf0\x80\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\x80\xed\xb0\x80",
                b"\xf4\x90\x80\x80", b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf"]


def pusher_ping_with(sample: str) -> bytes:
    return json.dumps({"event": "pusher:ping", "data": sample}, ensure_ascii=False).encode()


def fragments(message: bytes, count: int, pings_after: tuple[int, ...] = ()) -> list[bytes]:
    size = -(-len(message) // count)
    parts = [message[i:i + size] for i in range(0, len(message), size)]
    out = []
    for i, part in enumerate(parts):
        out.append(frame(TEXT if i == 0 else CONT, part, fin=i == len(parts) - 1))
        if i in pings_after:
            out.append(frame(PINGOP, b"ping"))
    return out


def fragments_of(message: bytes, size: int) -> list[bytes]:
    return fragments(message, -(-len(message) // size))


def answered_after_text() -> Callable[[RawSocket], tuple[str, str]]:
    return lambda c: text_reply(c)


def closes_back(*codes: int, no_pong: bool = False,
                lenient: tuple[int, str] | None = None) -> Callable[[RawSocket], tuple[str, str]]:
    """The server answers the client's close with a close frame (echoing the code) and closes TCP;
    ``lenient`` (code, why) is a known other answer, counted NON-STRICT."""
    def check(c: RawSocket) -> tuple[str, str]:
        deadline = time.monotonic() + 3
        while True:
            try:
                got = c.read_frame(max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                return FAILED, "no close frame in answer"
            if got is None:
                return FAILED, "TCP closed without a close frame"
            if no_pong and got.opcode in (PONGOP,):
                return FAILED, "answered a ping after the close"
            if got.opcode == CLOSE:
                code = close_code(got.payload)
                if lenient is not None and code == lenient[0] and c.tcp_closed_within(3) is not None:
                    return NON_STRICT, lenient[1]
                if code not in codes:
                    return FAILED, f"echoed close {code}, expected {codes}"
                left = c.tcp_closed_within(3)
                if left is None:
                    return NON_STRICT, "close echoed but TCP left open"
                return OK, f"echoed {code}, TCP closed"
    return check


def fail_fast(c: RawSocket) -> tuple[str, str]:
    c.send(text(b'{"event":"pusher:ping","data":"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80', fin=False))
    code, _ = c.close_code(2)
    if code == 1007:
        return OK, "closed with 1007 before the message ended"
    return FAILED, f"no 1007 before the message ended (got {code})"


def round_trips(count: int) -> Callable[[RawSocket], tuple[str, str]]:
    def run(c: RawSocket) -> tuple[str, str]:
        start = time.monotonic()
        for _ in range(count):
            status, detail = answered(c)
            if status != OK:
                return status, detail
        return OK, f"{count} round trips in {time.monotonic() - start:.2f}s"
    return run


def deflate_offered(c: RawSocket) -> tuple[str, str]:
    return UNIMPLEMENTED, "permessage-deflate is never negotiated (Pusher messages are small JSON)"


def run_all(host: str, port: int, key: str, frame_limit: int, full: bool) -> list[Result]:
    results = []
    for item in build(frame_limit):
        if item.full_only and not full:
            continue
        start = time.monotonic()
        try:
            client = RawSocket(host, port, f"/app/{key}?protocol=7")
            client.pusher_ready()
        except Exception as exc:  # the server must keep accepting: a failed handshake is a failed case
            results.append(Result(item.id, item.title, FAILED, f"could not connect: {exc!r}", 0.0))
            continue
        try:
            status, detail = item.run(client)
        except Exception as exc:
            status, detail = FAILED, f"harness error: {exc!r}"
        finally:
            client.close()
        results.append(Result(item.id, item.title, status, detail, time.monotonic() - start))
    return results


def table(results: list[Result]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    lines = ["| case | title | result | detail |", "|---|---|---|---|"]
    lines += [f"| {r.id} | {r.title} | {r.status} | {r.detail} |" for r in results]
    summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in (OK, NON_STRICT, UNIMPLEMENTED, FAILED))
    return f"{len(results)} cases: {summary}\n\n" + "\n".join(lines) + "\n"
