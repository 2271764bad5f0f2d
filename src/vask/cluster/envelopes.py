"""Messages between nodes on the broker, as typed records with a versioned wire form.

Every envelope names its origin node, its app, the sender's boot id and sequence number (vask.cluster.stats
counts the gaps) and one body. On the wire it is a compact JSON object: ``v`` (format version), ``k`` (kind),
``o``, ``a``, ``b``, ``q`` and the body's fields. Anything else on the bus — garbage, another program, a node
speaking a newer format — decodes to None with a log line (once per origin and problem), never an exception.
A message without ``v`` comes from a node older than the version field and has the same form as version 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

log = logging.getLogger("vask.cluster")

VERSION = 1


@dataclass(frozen=True, slots=True)
class Publish:
    """A channel event (HTTP API, sendToUser). ``event_id`` is set for cache channels."""
    channel: str
    event: str
    data: str
    exclude: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClientEvent:
    channel: str
    event: str
    data: Any
    user_id: str | None  # the presence member who sent it
    exclude: str  # the sender's socket id


@dataclass(frozen=True, slots=True)
class MemberAdded:
    channel: str
    user_id: str
    info: Any


@dataclass(frozen=True, slots=True)
class MemberRemoved:
    channel: str
    user_id: str


@dataclass(frozen=True, slots=True)
class Count:
    """subscription_count; ``version`` is the count document's: a later one wins."""
    channel: str
    count: int
    version: int


@dataclass(frozen=True, slots=True)
class Watch:
    user_id: str
    online: bool


@dataclass(frozen=True, slots=True)
class Terminate:
    user_id: str


Body = Publish | ClientEvent | MemberAdded | MemberRemoved | Count | Watch | Terminate


@dataclass(frozen=True, slots=True)
class Envelope:
    origin: str
    app_id: str
    body: Body
    boot: str = ""
    seq: int = 0  # 0: the sender numbers nothing (an older node)


# kind on the wire → (record, ((attribute, wire key, type, required), ...))
_STR, _INT, _BOOL, _ANY = str, int, bool, object
_FIELDS: dict[str, tuple[type[Any], tuple[tuple[str, str, type[Any], bool], ...]]] = {
    "pub": (Publish, (("channel", "c", _STR, True), ("event", "e", _STR, True), ("data", "d", _STR, True),
                      ("exclude", "x", _STR, False), ("event_id", "i", _STR, False))),
    "cli": (ClientEvent, (("channel", "c", _STR, True), ("event", "e", _STR, True), ("data", "d", _ANY, False),
                          ("user_id", "u", _STR, False), ("exclude", "x", _STR, True))),
    "ma": (MemberAdded, (("channel", "c", _STR, True), ("user_id", "u", _STR, True), ("info", "i", _ANY, False))),
    "mr": (MemberRemoved, (("channel", "c", _STR, True), ("user_id", "u", _STR, True))),
    "cnt": (Count, (("channel", "c", _STR, True), ("count", "n", _INT, True), ("version", "s", _INT, False))),
    "w": (Watch, (("user_id", "u", _STR, True), ("online", "on", _BOOL, True))),
    "term": (Terminate, (("user_id", "u", _STR, True),)),
}
_KIND = {record: kind for kind, (record, _) in _FIELDS.items()}
_DEFAULTS: dict[str, Any] = {"version": 0}
_reported: set[tuple[str, str]] = set()


def encode(envelope: Envelope) -> bytes:
    body = envelope.body
    kind = _KIND[type(body)]
    message: dict[str, Any] = {"v": VERSION, "k": kind, "o": envelope.origin, "a": envelope.app_id,
                               "b": envelope.boot, "q": envelope.seq}
    for attribute, key, _, required in _FIELDS[kind][1]:
        value = getattr(body, attribute)
        if required or value is not None:
            message[key] = value
    return orjson.dumps(message)


def decode(payload: bytes) -> Envelope | None:
    """The envelope, or None (logged) when it is not one this node can read."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _refuse("?", "a message that is not JSON")
    if not isinstance(message, dict):
        return _refuse("?", "a message that is not a JSON object")
    origin = message.get("o")
    origin = origin if isinstance(origin, str) else "?"
    version = message.get("v", VERSION)
    if version != VERSION:
        return _refuse(origin, f"envelope format version {version!r} (this node reads {VERSION}): "
                               "upgrade the nodes to the same Vask version")
    spec = _FIELDS.get(message.get("k"))  # type: ignore[arg-type]
    app_id, boot, seq = message.get("a"), message.get("b", ""), message.get("q", 0)
    if spec is None or origin == "?" or not isinstance(app_id, str) or not isinstance(boot, str) \
            or not _is(seq, _INT):
        return _refuse(origin, f"an envelope of unknown kind or without origin and app ({message.get('k')!r})")
    record, fields = spec
    values: dict[str, Any] = {}
    for attribute, key, kind, required in fields:
        value = message.get(key)
        if value is None:
            if required and kind is not _ANY:
                return _refuse(origin, f"a {message['k']!r} envelope without {key!r}")
            value = _DEFAULTS.get(attribute)
        elif not _is(value, kind):
            return _refuse(origin, f"a {message['k']!r} envelope whose {key!r} is not a {kind.__name__}")
        values[attribute] = value
    return Envelope(origin, app_id, record(**values), boot, seq)


def _is(value: Any, kind: type[Any]) -> bool:
    if kind is _ANY:
        return True
    if kind is _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _refuse(origin: str, problem: str) -> Envelope | None:
    if len(_reported) > 1000:  # bounded: a stream of distinct junk must not grow memory
        _reported.clear()
    if (origin, problem) not in _reported:
        _reported.add((origin, problem))
        log.warning("ignoring %s on the bus (from node %s)", problem, origin)
    return None
