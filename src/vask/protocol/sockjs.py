"""pusher-js' HTTP fallback transports (xhr_streaming, xhr_polling): paths and SockJS-style framing. No I/O.

pusher-js 8 (src/core/http/http_socket.ts) opens ``{httpPath}/app/{key}/{server}/{session}/xhr_streaming`` or
``.../xhr`` (a POST held open, read line by line) and posts client frames to ``.../xhr_send`` as a JSON array of
strings. Each line the server sends starts with a type: ``o`` open, ``a[...]`` a JSON array of Pusher messages
(each a JSON string), ``h`` heartbeat, ``c[code,"reason"]`` close. The Pusher messages themselves are the ones a
WebSocket carries, so the hub's pre-framed WebSocket bytes are unwrapped here rather than framed twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import orjson

OPEN: Final = b"o\n"
HEARTBEAT: Final = b"h\n"
KINDS: Final = ("xhr_streaming", "xhr", "xhr_send")
# server: pusher-js sends randomInt(1000); session: 8 characters of base 32. Anything like them is accepted,
# bounded in length and free of dots (SockJS's rule) so the ids stay cheap to keep and to log.
_PATH = re.compile(r"^(?P<prefix>(?:/[^/]+)*)/app/(?P<key>[^/]+)/(?P<server>[^/]*)/(?P<session>[^/]*)/"
                   r"(?P<kind>xhr_streaming|xhr_send|xhr)$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True, slots=True)
class Target:
    key: str
    session: str  # "{server}/{session}", the id pusher-js keeps for the life of one connection
    kind: str  # "xhr_streaming", "xhr" (polling) or "xhr_send"


class BadPath(Exception):
    """The path names an HTTP transport but not a valid session; the text says why (HTTP 404)."""


def is_transport_path(path: str) -> bool:
    """Cheap test run on every plain HTTP request before the full parse."""
    return path.endswith(("/xhr_streaming", "/xhr", "/xhr_send"))


def parse_path(path: str) -> Target:
    found = _PATH.match(path)
    if found is None:
        raise BadPath(f"Not found: pusher-js' HTTP transports use {{httpPath}}/app/{{key}}/{{server}}/{{session}}/"
                      f"xhr_streaming, /xhr or /xhr_send, not {path}")
    server, session = found["server"], found["session"]
    if not _ID.match(server) or not _ID.match(session):
        raise BadPath("Invalid session id: server and session must be 1 to 32 letters, digits, _ or -")
    return Target(found["key"], f"{server}/{session}", found["kind"])


def unwrap_ws_frames(data: bytes) -> list[bytes]:
    """The payloads of unmasked, final WebSocket frames as ``vask.protocol.frames.ws_frame`` writes them."""
    payloads = []
    view = memoryview(data)
    pos, end = 0, len(data)
    while pos < end:
        length = data[pos + 1] & 0x7F
        pos += 2
        if length == 126:
            length = int.from_bytes(view[pos:pos + 2], "big")
            pos += 2
        elif length == 127:
            length = int.from_bytes(view[pos:pos + 8], "big")
            pos += 8
        payloads.append(data[pos:pos + length])
        pos += length
    return payloads


def array_frame(payloads: list[bytes]) -> bytes:
    """``a[...]`` line: each Pusher message (JSON bytes) as a JSON string, as pusher-js decodes it."""
    return b"a" + orjson.dumps([p.decode() for p in payloads]) + b"\n"


def close_frame(code: int, reason: str) -> bytes:
    return b"c" + orjson.dumps([code, reason]) + b"\n"


class BadSend(Exception):
    """An xhr_send body that is not a JSON array of strings; the text says why (HTTP 400)."""


def parse_send(body: bytes) -> list[str]:
    """The client frames of one xhr_send body: ``["<pusher message>", ...]``; ``[]`` is pusher-js' heartbeat."""
    if not body:
        raise BadSend("Payload expected: a JSON array of strings, e.g. [\"{\\\"event\\\":...}\"]")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadSend("Broken JSON encoding: the body must be a JSON array of strings") from None
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        raise BadSend("Payload must be a JSON array of strings (each one Pusher message)")
    return parsed


def request_number(query: str) -> int | None:
    """pusher-js' ``n`` query parameter: a counter it increases on every HTTP transport request of the page."""
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name == "n":
            return int(value) if value.isdigit() and len(value) <= 15 else None
    return None
