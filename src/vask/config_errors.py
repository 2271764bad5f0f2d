"""A configuration error, told the way a person can act on it: one line per bad value, naming the setting and
where that value came from (the option, the ``VASK_*`` variable, or the file and line)."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from vask.masking import SECRET_FIELD, mask_url


def describe(exc: ValidationError, config_path: Path | None, overrides: dict[str, Any], known: Iterable[str]) -> str:
    """One line per bad value, naming the setting and where that value came from."""
    text = None
    if config_path is not None:
        try:
            text = config_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None
    lines = []
    for error in exc.errors():
        loc = error["loc"]
        name = _dotted(loc) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and len(loc) == 1:
            message = f"unknown setting (known: {', '.join(known)})"
        elif error["type"] == "extra_forbidden":
            message = "unknown key"
        elif loc and "input" in error and not SECRET_FIELD.search(name):
            # Only a single field's value is echoed: a whole-model input could hold a database password.
            shown = error["input"]
            if name.endswith("_url") and isinstance(shown, str):
                shown = mask_url(shown)
            if not isinstance(shown, dict | list):
                message = f"{message} (got {shown!r})"
        source = _source(loc, config_path, text, overrides)
        lines.append(f"{name} ({source}): {message}" if source else f"{name}: {message}")
    origin = f"{config_path}, " if config_path is not None else ""
    return f"invalid configuration ({origin}VASK_* environment or options):\n  " + "\n  ".join(lines)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _source(loc: tuple[int | str, ...], config_path: Path | None, text: str | None,
            overrides: dict[str, Any]) -> str:
    """Where the value at ``loc`` came from, in the order sources win: option, env variable, file line."""
    if not loc or not isinstance(loc[0], str):
        return ""
    top = loc[0]
    if top in overrides:
        return f"option --{top.replace('_', '-')}"
    env_name = f"VASK_{top.upper()}"
    if any(key.upper() == env_name and value != "" for key, value in os.environ.items()):
        return f"environment variable {env_name}"
    if any(key.upper().startswith(env_name + "__") for key in os.environ):
        return f"environment variables {env_name}__*"
    if text is not None and config_path is not None:
        line = _toml_line(text, loc)
        if line:
            return f"{config_path}:{line}"
        if top in _top_keys(text):
            return str(config_path)
    return ""


def _top_keys(text: str) -> set[str]:
    try:
        return set(tomllib.loads(text))
    except tomllib.TOMLDecodeError:
        return set()


_HEADER = re.compile(r"^\s*\[")


def _toml_line(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Best-effort line of ``loc`` in a TOML text: a top-level key, or a key inside the n-th [[table]]."""
    lines = text.splitlines()
    top = str(loc[0])
    if len(loc) >= 2 and isinstance(loc[1], int):
        headers = [i for i, line in enumerate(lines) if re.match(rf"^\s*\[\[\s*{re.escape(top)}\s*\]\]", line)]
        if loc[1] >= len(headers):
            return None
        start = headers[loc[1]]
        end = next((h for h in headers if h > start), len(lines))
        for key in reversed([str(part) for part in loc[2:] if isinstance(part, str)]):
            for i in range(start + 1, end):
                if re.match(rf"^\s*\"?{re.escape(key)}\"?\s*=", lines[i]) or \
                        re.match(rf"^\s*\[\s*{re.escape(top)}\.{re.escape(key)}\s*\]", lines[i]):
                    return i + 1
        return start + 1
    for i, line in enumerate(lines):
        if _HEADER.match(line):
            break  # past the top-level keys
        if re.match(rf"^\s*\"?{re.escape(top)}\"?\s*=", line):
            return i + 1
    return None
