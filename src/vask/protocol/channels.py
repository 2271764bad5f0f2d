"""Channel names: type by anchored prefix, and validation (pusher-protocol.md §1.6)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

NAME_RE = re.compile(r"\A[-a-zA-Z0-9_=@,.;]+\Z")
USER_CHANNEL_PREFIX = "#server-to-user-"


class Kind(Enum):
    PUBLIC = "public"
    PRIVATE = "private"
    PRESENCE = "presence"
    ENCRYPTED = "encrypted"
    USER = "user"


@dataclass(frozen=True, slots=True)
class ChannelType:
    kind: Kind
    cache: bool

    @property
    def needs_auth(self) -> bool:
        return self.kind in (Kind.PRIVATE, Kind.PRESENCE, Kind.ENCRYPTED)

    @property
    def is_presence(self) -> bool:
        return self.kind is Kind.PRESENCE

    @property
    def allows_client_events(self) -> bool:
        return self.kind in (Kind.PRIVATE, Kind.PRESENCE)


# First match wins: the longer prefixes must come first.
_PREFIXES: tuple[tuple[str, ChannelType], ...] = (
    ("private-encrypted-cache-", ChannelType(Kind.ENCRYPTED, True)),
    ("private-encrypted-", ChannelType(Kind.ENCRYPTED, False)),
    ("private-cache-", ChannelType(Kind.PRIVATE, True)),
    ("presence-cache-", ChannelType(Kind.PRESENCE, True)),
    ("cache-", ChannelType(Kind.PUBLIC, True)),
    ("private-", ChannelType(Kind.PRIVATE, False)),
    ("presence-", ChannelType(Kind.PRESENCE, False)),
    (USER_CHANNEL_PREFIX, ChannelType(Kind.USER, False)),
)
_PUBLIC = ChannelType(Kind.PUBLIC, False)


def channel_type(name: str) -> ChannelType:
    for prefix, kind in _PREFIXES:
        if name.startswith(prefix):
            return kind
    return _PUBLIC


def user_channel_owner(name: str) -> str | None:
    """The user id of a ``#server-to-user-{id}`` channel, else None."""
    if name.startswith(USER_CHANNEL_PREFIX):
        return name[len(USER_CHANNEL_PREFIX):]
    return None


def name_error(name: object, max_length: int) -> str | None:
    """Why ``name`` is not an acceptable channel name, or None when it is."""
    if not isinstance(name, str) or not name:
        return "Channel name must be a non-empty string"
    if len(name) > max_length:
        return f"Channel name too long: {len(name)} characters, the limit is {max_length}"
    owner = user_channel_owner(name)
    if owner is not None:
        if not owner or not NAME_RE.match(owner):
            return f"Invalid user id in channel name {name!r}"
        return None
    if not NAME_RE.match(name):
        return (f"Invalid channel name {name!r}: only letters, digits and _ - = @ , . ; are allowed "
                "('#' is reserved)")
    return None
