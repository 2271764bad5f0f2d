"""The frames of an open server-side WebSocket (RFC 6455 §5), sans-I/O.

What websockets' ServerProtocol did for Vask once the handshake was done — parse and unmask client frames,
answer pings, check the sequence of a fragmented message, run the close handshake and fail a broken peer with
the right close code — without its per-connection set-up (a uuid, a generator-based parser, a logger) or its
per-frame generator steps, which together were a fifth of the server's CPU per connect-subscribe-close cycle.

The handshake offers no extension, so any reserved bit is a protocol error. Text payloads are returned as
received: the caller checks their UTF-8 as the message arrives (vask.server.websocket.receive).
"""

from __future__ import annotations

from typing import NamedTuple

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_OPCODES = frozenset((CONT, TEXT, BINARY, CLOSE, PING, PONG))
# Close codes a peer may send (RFC 6455 §7.4.1, IANA registry); 1004-1006 and 1015 are never on the wire.
_PEER_CODES = frozenset((1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014))
NO_STATUS, PROTOCOL_ERROR, INVALID_DATA, TOO_BIG = 1005, 1002, 1007, 1009

OPEN, CLOSING = "open", "closing"


class Frame(NamedTuple):
    opcode: int
    data: bytes
    fin: bool


class _Failed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``mask``: as two integers, so the loop runs in C."""
    size = len(data)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(size, "little")


def control_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final frame with a payload of at most 125 bytes (close, ping, pong)."""
    return bytes((0x80 | opcode, len(payload))) + payload


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: at most 123 bytes of reason, cut on a character boundary (the full text went out
    in the pusher:error frame)."""
    text = reason.encode()
    if len(text) > 123:
        text = text[:120].decode(errors="ignore").encode() + b"..."
    return code.to_bytes(2, "big") + text


class ServerFrames:
    """Feed it the bytes read (``receive_data``), take the frames (``events_received``) and what to write
    (``data_to_send``; an empty chunk means: close the TCP connection once the rest is written, as a server
    does first after a close handshake, RFC 6455 §7.1.1)."""

    __slots__ = ("buffer", "done", "events", "in_message", "max_size", "message_size", "output", "state")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.buffer = b""  # the start of a frame not yet complete
        self.state = OPEN
        self.in_message = False  # a fragmented message has started and not ended
        self.message_size = 0  # the bytes of that message so far: max_size bounds the whole message
        self.done = False  # the TCP close was asked for: later bytes are ignored
        self.events: list[Frame] = []
        self.output: list[bytes] = []

    def receive_data(self, data: bytes) -> None:
        if self.done:
            return
        buf = self.buffer + data if self.buffer else data
        pos = 0
        try:
            while not self.done:
                end = self._next_frame(buf, pos)
                if end < 0:
                    break
                pos = end
        except _Failed as exc:
            self.fail(exc.code, exc.reason)
            return
        self.buffer = b"" if self.done else buf[pos:]

    def _next_frame(self, buf: bytes, pos: int) -> int:
        """Take the frame at ``pos``; its end, or -1 while it is incomplete. The header is checked as soon
        as it is in, so an oversized or malformed frame fails without waiting for its payload."""
        available = len(buf) - pos
        if available < 2:
            return -1
        first, second = buf[pos], buf[pos + 1]
        opcode, fin = first & 0x0F, bool(first & 0x80)
        if opcode not in _OPCODES:
            raise _Failed(PROTOCOL_ERROR, f"invalid opcode: {opcode}")
        if not second & 0x80:
            raise _Failed(PROTOCOL_ERROR, "incorrect masking: a client must mask its frames")
        length, start = second & 0x7F, pos + 2
        if length == 126:
            if available < 4:
                return -1
            length, start = int.from_bytes(buf[pos + 2:pos + 4], "big"), pos + 4
        elif length == 127:
            if available < 10:
                return -1
            length, start = int.from_bytes(buf[pos + 2:pos + 10], "big"), pos + 10
        # Like websockets, the limit is on the message: within a fragmented one, any frame gets what is left.
        limit = self.max_size - self.message_size if self.in_message else self.max_size
        if length > limit:
            raise _Failed(TOO_BIG, f"frame with {length} bytes exceeds limit of {limit} bytes")
        if first & 0x70:
            raise _Failed(PROTOCOL_ERROR, "reserved bits must be 0")
        if opcode & 0x8:
            if length > 125:
                raise _Failed(PROTOCOL_ERROR, "control frame too long")
            if not fin:
                raise _Failed(PROTOCOL_ERROR, "fragmented control frame")
        end = start + 4 + length
        if end > len(buf):
            return -1
        self._frame(opcode, unmask(buf[start + 4:end], buf[start:start + 4]), fin)
        return end

    def _frame(self, opcode: int, data: bytes, fin: bool) -> None:
        if opcode in (TEXT, BINARY):
            if self.in_message:
                raise _Failed(PROTOCOL_ERROR, "expected a continuation frame")
            self.in_message = not fin
            self.message_size = len(data)
        elif opcode == CONT:
            if not self.in_message:
                raise _Failed(PROTOCOL_ERROR, "unexpected continuation frame")
            self.in_message = not fin
            self.message_size += len(data)
        elif opcode == PING:
            self.output.append(control_frame(PONG, data))
        elif opcode == CLOSE:
            self._close_received(data)
        self.events.append(Frame(opcode, data, fin))

    def _close_received(self, data: bytes) -> None:
        if len(data) == 1:
            raise _Failed(PROTOCOL_ERROR, "close frame too short")
        if data:
            code = int.from_bytes(data[:2], "big")
            try:
                data[2:].decode()
            except UnicodeDecodeError as exc:
                raise _Failed(INVALID_DATA, f"invalid UTF-8 in the close reason at position {exc.start}") from exc
            if code not in _PEER_CODES and not 3000 <= code < 5000:
                raise _Failed(PROTOCOL_ERROR, f"invalid status code {code}")
        if self.in_message:
            raise _Failed(PROTOCOL_ERROR, "incomplete fragmented message")
        if self.state == OPEN:  # the peer started the close handshake: echo its code
            self.output.append(control_frame(CLOSE, data))
            self.state = CLOSING
        self._finish()

    def _finish(self) -> None:
        self.output.append(b"")
        self.done = True
        self.buffer = b""

    def fail(self, code: int, reason: str) -> None:
        """Close with ``code`` because the peer broke the protocol, then close TCP (RFC 6455 §7.1.7)."""
        self.send_close(code, reason)
        if not self.done:
            self._finish()

    def send_close(self, code: int, reason: str) -> None:
        """Start the close handshake; the peer's close frame then ends it. Once closing, nothing more is sent."""
        if self.state != OPEN:
            return
        self.output.append(control_frame(CLOSE, close_payload(code, reason)))
        self.state = CLOSING

    def events_received(self) -> list[Frame]:
        events, self.events = self.events, []
        return events

    def data_to_send(self) -> list[bytes]:
        output, self.output = self.output, []
        return output

    @property
    def pending(self) -> bool:
        """Part of a frame has arrived and not the rest."""
        return bool(self.buffer)
