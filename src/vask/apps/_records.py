"""Conversions between App and the column values shared by the SQL stores."""

from __future__ import annotations

import json
from typing import Any

from vask.apps.base import App, AppSettings


def settings_payload(app: App) -> dict[str, Any]:
    # Every field is written, defaults included, so an app keeps the limits it was created with even if a
    # later Vask release changes a default.
    return app.settings.model_dump(mode="json")


def settings_json(app: App) -> str:
    return json.dumps(settings_payload(app), sort_keys=True, separators=(",", ":"))


def app_from_columns(app_id: str, key: str, secret: str, name: str, enabled: Any,
                     settings: str | dict[str, Any], account_id: str | None = None) -> App:
    raw = json.loads(settings) if isinstance(settings, str) else settings
    return App(id=app_id, key=key, secret=secret, name=name, enabled=bool(enabled),
               settings=AppSettings.model_validate(raw), account_id=account_id)
