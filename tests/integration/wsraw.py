"""WebSocket over a plain socket, byte by byte (RFC 6455), for tests that must send what no client library would:
broken frames, bad UTF-8, partial frames, and then watch exactly what the server does."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time
from dataclasses import dataclass


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, mask: bool = True,
          length: int | None = None) -> bytes:
    """One client frame; ``length`` overrides the declared payload length (for partial frames)."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(data: str | bytes, **kwargs: object) -> bytes:
    return frame(0x1, data.encode() if isinstance(data, str) else data, **kwargs)  # type: ignore[arg-type]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def upgrade_request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


class RawSocket:
    """A WebSocket client with no rules: it sends bytes and parses the server's frames."""

    def __init__(self, host: str, port: int, path: str, timeout: float = 5.0, rcvbuf: int | None = None) -> None:
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        else:  # set before connecting, so the TCP window is small from the start
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
        self.buffer = b""
        self.sock.sendall(upgrade_request(host, port, path))
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed during the handshake: {self.buffer!r}")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        self.established: dict[str, object] = {}

    def pusher_ready(self, timeout: float = 5.0) -> str:
        """Read pusher:connection_established; return the socket id."""
        message = self.next_message(timeout)
        assert message is not None and message["event"] == "pusher:connection_established", message
        data = json.loads(message["data"])
        self.established = data
        return str(data["socket_id"])

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return False
        except TimeoutError:
            raise TimeoutError from None
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def read_frame(self, timeout: float = 5.0) -> Frame | None:
        """The next server frame, or None when the server closed TCP; TimeoutError when nothing comes."""
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            if not self._fill(deadline):
                return None

    def _parse(self) -> Frame | None:
        data = self.buffer
        if len(data) < 2:
            return None
        size, offset = data[1] & 0x7F, 2
        if size == 126:
            if len(data) < 4:
                return None
            size, offset = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            if len(data) < 10:
                return None
            size, offset = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < offset + size:
            return None
        self.buffer = data[offset + size:]
        return Frame(bool(data[0] & 0x80), data[0] & 0x0F, data[offset:offset + size])

    def next_message(self, timeout: float = 5.0) -> dict[str, object] | None:
        """The next Pusher text message (control frames skipped); None when the connection closed."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.read_frame(max(deadline - time.monotonic(), 0.001))
            if got is None or got.opcode == 0x8:
                return None
            if got.opcode == 0x1:
                message = json.loads(got.payload)
                assert isinstance(message, dict)
                return message

    def close_code(self, timeout: float = 5.0) -> tuple[int | None, bool]:
        """Read until the server's close frame or TCP close: (its close code or None, whether TCP closed)."""
        deadline = time.monotonic() + timeout
        code = None
        while True:
            try:
                got = self.read_frame(max(deadline - time.monotonic(), 0.001))
            except TimeoutError:
                return code, False
            if got is None:
                return code, True
            if got.opcode == 0x8:
                code = struct.unpack("!H", got.payload[:2])[0] if len(got.payload) >= 2 else 1005
                try:  # answer it, as a client must; the server then closes TCP
                    self.send(frame(0x8, got.payload[:2]))
                except OSError:
                    return code, True

    def tcp_closed_within(self, timeout: float) -> float | None:
        """Seconds until the server closed (or reset) TCP, reading and discarding everything; None: still open."""
        start = time.monotonic()
        deadline = start + timeout
        while True:
            try:
                if not self._fill(deadline):
                    return time.monotonic() - start
            except TimeoutError:
                return None
            self.buffer = b""

    def close(self) -> None:
        self.sock.close()
