"""Which user may subscribe to which private or presence channel, declared once per channel pattern.

Patterns name their variable parts in braces; a part matches one dot-free segment of the channel name::

    from vask.contrib.django import authorizers, same_user

    authorizers.register("private-orders.{user_id}", same_user("user_id"))

    @authorizers.channel("presence-doc.{doc_id}")
    def doc_viewers(user, doc_id):
        return Document.objects.filter(pk=doc_id, team__members=user).exists()

A check gets the user and the named parts as keyword arguments and returns true to allow, false to refuse, or
(on a presence channel) a dict: allowed, with that dict as the member's ``user_info``. A channel that no
pattern matches is refused, so a forgotten rule fails closed. Put rules in a ``vask_channels.py`` module of an
installed app: it is imported when Django starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import get_settings
from .identity import user_id

Check = Callable[..., Any]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Pusher's channel-name alphabet, less the dot that separates the parts of a pattern.
_SEGMENT = r"[-A-Za-z0-9_=@,;]+"
_AUTH_PREFIXES = ("private-", "presence-")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    user_info: dict[str, Any] | None = None  # a presence check's own member info


@dataclass(frozen=True)
class _Rule:
    pattern: str
    regex: re.Pattern[str]
    check: Check


def compile_pattern(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith(_AUTH_PREFIXES):
        raise ValueError(f"{pattern!r}: only private- and presence- channels need authorization")
    parts: list[str] = []
    names: set[str] = set()
    position = 0
    for match in _PLACEHOLDER.finditer(pattern):
        name = match.group(1)
        if name == "user":  # the check's first argument
            raise ValueError(f"{pattern!r}: {{user}} is reserved; name the part e.g. {{user_id}}")
        if name in names:
            raise ValueError(f"{pattern!r}: {{{name}}} appears twice")
        names.add(name)
        parts += [re.escape(pattern[position:match.start()]), f"(?P<{name}>{_SEGMENT})"]
        position = match.end()
    rest = pattern[position:]
    if "{" in rest or "}" in rest:
        raise ValueError(f"{pattern!r}: braces must enclose a name such as {{user_id}}")
    parts.append(re.escape(rest))
    return re.compile("".join(parts))


class ChannelRegistry:
    """Channel patterns mapped to checks; the first pattern (in registration order) that matches decides."""

    def __init__(self) -> None:
        self._rules: list[_Rule] = []

    def register(self, pattern: str, check: Check) -> Check:
        if any(rule.pattern == pattern for rule in self._rules):
            raise ValueError(f"{pattern!r} is registered already")
        self._rules.append(_Rule(pattern, compile_pattern(pattern), check))
        return check

    def channel(self, pattern: str) -> Callable[[Check], Check]:
        """Decorator form of :meth:`register`."""
        return lambda check: self.register(pattern, check)

    def unregister(self, pattern: str) -> None:
        self._rules = [rule for rule in self._rules if rule.pattern != pattern]

    @property
    def patterns(self) -> list[str]:
        return [rule.pattern for rule in self._rules]

    def match(self, channel: str) -> tuple[str, Check, dict[str, str]] | None:
        for rule in self._rules:
            found = rule.regex.fullmatch(channel)
            if found:
                return rule.pattern, rule.check, found.groupdict()
        return None

    def authorize(self, user: Any, channel: str) -> Decision:
        if not channel.startswith(_AUTH_PREFIXES):
            return Decision(False, f"{channel} is a public channel: subscribe without authorization")
        found = self.match(channel)
        if found is None:
            return Decision(False, f"no authorization rule matches {channel}")
        pattern, check, params = found
        verdict = check(user, **params)
        if isinstance(verdict, Mapping):
            return Decision(True, user_info=dict(verdict))
        if verdict:
            return Decision(True)
        return Decision(False, f"not allowed on {channel} (rule {pattern})")


def same_user(param: str = "user_id") -> Check:
    """A check that allows only the user whose id (see ``identity.user_id``) is the channel's ``{param}``."""

    def check(user: Any, **params: str) -> bool:
        return params.get(param) == user_id(user)

    check.__name__ = f"same_user_{param}"
    return check


authorizers = ChannelRegistry()
"""The registry the views use unless ``VASK["AUTHORIZERS"]`` names another."""


def active_registry() -> ChannelRegistry:
    """``VASK["AUTHORIZERS"]`` when set (a dotted path to a registry), else :data:`authorizers`."""
    path = get_settings().authorizers
    if path is None:
        return authorizers
    found = import_string(path)
    if not isinstance(found, ChannelRegistry):
        raise ImproperlyConfigured(f"VASK['AUTHORIZERS'] = {path!r} is not a ChannelRegistry")
    return found
