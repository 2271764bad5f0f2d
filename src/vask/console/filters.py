"""What one console viewer wants to see: event types, a channel (or a channel prefix), a text search."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vask.console.events import EVENT_TYPES, ConsoleEvent

MAX_TEXT = 200  # a search string longer than this is a mistake, not a search


@dataclass(frozen=True)
class ConsoleFilter:
    types: frozenset[str] = frozenset()  # empty: all types
    channel: str | None = None  # exact name, or a prefix ending in '*'
    text: str | None = None  # case-insensitive substring of the event's JSON

    def __post_init__(self) -> None:
        unknown = sorted(self.types - set(EVENT_TYPES))
        if unknown:
            raise ValueError(f"unknown event type {', '.join(unknown)}: use {', '.join(EVENT_TYPES)}")

    def matches(self, event: ConsoleEvent) -> bool:
        if self.types and event.type not in self.types:
            return False
        if self.channel is not None:
            if event.channel is None:
                return False
            if self.channel.endswith("*"):
                if not event.channel.startswith(self.channel[:-1]):
                    return False
            elif event.channel != self.channel:
                return False
        if self.text is not None:
            # Searched in the JSON with non-ASCII kept as is, so "é" finds "é" (orjson does not escape it).
            return self.text.lower() in event.to_json().decode().lower()
        return True

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ConsoleFilter:
        """From ``?types=a,b&channel=x&q=text``; ValueError with a message a person can act on."""
        raw_types = (query.get("types") or "").strip()
        types = frozenset(t.strip() for t in raw_types.split(",") if t.strip())
        channel = (query.get("channel") or "").strip() or None
        if channel is not None and ("*" in channel[:-1]):
            raise ValueError("channel: '*' is only allowed at the end, as a prefix (e.g. private-chat-*)")
        if channel == "*":
            channel = None
        text = query.get("q") or None
        if text is not None and len(text) > MAX_TEXT:
            raise ValueError(f"q: the search text is at most {MAX_TEXT} characters")
        return cls(types, channel, text)
