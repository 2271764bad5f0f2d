"""Apps declared in the configuration (``[[apps]]`` tables, ``VASK_APPS``, ``VASK_DEFAULT_APP_*``).

They are created or brought up to date in the store at every start, so a container or a systemd unit needs no
extra `vask apps create` step. The sync is idempotent. What the configuration declares wins at start, except the
secret: when the stored secret differs from the declared one (rotated with `vask apps rotate-secret`, say), the
stored one is kept and a warning says so, unless the app says ``overwrite_secret = true``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vask.apps.base import App, AppExists, AppSettings, AppStore

log = logging.getLogger("vask.apps")

# Ids and keys travel in URL paths (/apps/{id}/..., /app/{key}): URL-safe characters only (as the CLI checks).
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NUMERIC = re.compile(r"[0-9]+")
NON_NUMERIC_WARNING = ("pusher-http-python refuses app ids that are not all digits (ValueError: Invalid app id); "
                       "use a numeric id if a Python back end publishes to this app")


class DeclaredApp(BaseModel):
    """One ``[[apps]]`` table. Settings not given keep their stored value (or the default for a new app)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    key: str
    secret: str
    name: str | None = None
    enabled: bool | None = None
    overwrite_secret: bool = Field(
        default=False, description="Replace a stored secret that differs from this one (it was changed with the "
                                   "CLI, or you rotated it here); otherwise the stored one is kept, with a warning.")
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", "key")
    @classmethod
    def _token(cls, value: str) -> str:
        if not TOKEN.fullmatch(value):
            raise ValueError("use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        if not value or not value.isprintable() or any(ch.isspace() for ch in value):
            raise ValueError("must be non-empty, printable and without spaces")
        return value

    @field_validator("settings")
    @classmethod
    def _settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = [name for name in value if name not in AppSettings.model_fields]
        if unknown:
            raise ValueError(f"unknown app setting {unknown[0]!r} (known: {', '.join(AppSettings.model_fields)})")
        try:
            checked = AppSettings.model_validate(value)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"{where}: {first['msg']} (got {first.get('input')!r})") from exc
        # Keep only what was given, converted: undeclared settings must not reset what the CLI set.
        return {name: getattr(checked, name) for name in value}


@dataclass
class SyncReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_unique(apps: list[DeclaredApp]) -> None:
    """Two declared apps with one id or key can never both exist: a configuration error, not a start-up race."""
    for attr in ("id", "key"):
        seen: set[str] = set()
        for app in apps:
            value = getattr(app, attr)
            if value in seen:
                raise ValueError(f"two declared apps have the {attr} {value!r}")
            seen.add(value)


def _merged(declared: DeclaredApp, current: App | None) -> App:
    base = current or App(id=declared.id, key=declared.key, secret=declared.secret)
    settings = AppSettings.model_validate({**base.settings.model_dump(), **declared.settings})
    update: dict[str, Any] = {"key": declared.key, "settings": settings}
    if declared.name is not None:
        update["name"] = declared.name
    if declared.enabled is not None:
        update["enabled"] = declared.enabled
    if current is None or declared.overwrite_secret:
        update["secret"] = declared.secret
    return base.model_copy(update=update)


def sync(store: AppStore, apps: list[DeclaredApp], source: str = "the configuration") -> SyncReport:
    """Create or update ``apps`` in ``store``; blocking (run it off the event loop)."""
    report = SyncReport()
    for declared in apps:
        if not NUMERIC.fullmatch(declared.id):
            report.warnings.append(f"declared app {declared.id}: {NON_NUMERIC_WARNING}")
        for _attempt in range(3):  # another node may create it between our read and our write
            current = store.get_by_id(declared.id)
            wanted = _merged(declared, current)
            try:
                if current is None:
                    store.create(wanted)
                    report.created.append(declared.id)
                elif wanted != current:
                    store.update(wanted)
                    report.updated.append(declared.id)
                else:
                    report.unchanged.append(declared.id)
                break
            except AppExists:
                holder = store.get_by_key(declared.key)
                if holder is not None and holder.id != declared.id:
                    raise AppExists(f"declared app {declared.id} has the key {declared.key!r}, which app "
                                    f"{holder.id} already uses (change one of them)") from None
        if current is not None and current.secret != declared.secret and not declared.overwrite_secret:
            report.warnings.append(
                f"declared app {declared.id}: the stored secret differs from the one in {source} (it was changed "
                "with `vask apps update/rotate-secret`, or changed in the configuration); the stored secret is "
                "kept. Set overwrite_secret = true on this app to replace it.")
    return report
