"""Shared fakes and helpers for the HTTP API unit tests (test_rest*.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from vask.apps.base import App, AppSettings
from vask.protocol.api import CachedEvent, ChannelState
from vask.protocol.rest import (
    RestResponse,
    handle,
)

NOW = 1_700_000_000.0
APP = App(id="3", key="278d425bdf160c739803", secret="7ad3773142a6692b25b8")
OTHER = App(id="4", key="other-key", secret="other-secret")
DISABLED = App(id="5", key="disabled-key", secret="disabled-secret", enabled=False)
SMALL = App(id="6", key="small-key", secret="small-secret",
            settings=AppSettings(max_event_data_bytes=8, max_channels_per_trigger=2, max_batch_size=2,
                                 max_event_name_length=5, max_channel_name_length=12))
EMPTY = ChannelState(occupied=False, subscription_count=0, user_count=0, cache=None)


class Apps:
    def __init__(self, *apps: App) -> None:
        self.apps = list(apps)

    def get_by_id(self, app_id: str) -> App | None:
        return next((a for a in self.apps if a.id == app_id), None)

    def get_by_key(self, key: str) -> App | None:
        return next((a for a in self.apps if a.key == key), None)


APPS = Apps(APP, OTHER, DISABLED, SMALL)


@dataclass
class FakeHub:
    """In-memory HubApi: records publishes and terminations, serves canned channel state."""

    states: dict[str, ChannelState] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    published: list[tuple[str, str, str, str, str | None]] = field(default_factory=list)
    terminated: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, app: App, channel: str, event: str, data: str,
                exclude_socket_id: str | None = None) -> None:
        self.published.append((app.id, channel, event, data, exclude_socket_id))

    def channel_state(self, app_id: str, channel: str) -> ChannelState:
        return self.states.get(channel, EMPTY)

    def occupied_channels(self, app_id: str, prefix: str = "") -> dict[str, ChannelState]:
        return {name: state for name, state in self.states.items()
                if state.occupied and name.startswith(prefix)}

    def presence_user_ids(self, app_id: str, channel: str) -> list[str]:
        return self.members.get(channel, [])

    def terminate_user(self, app_id: str, user_id: str) -> int:
        self.terminated.append((app_id, user_id))
        return 1


def sample_hub() -> FakeHub:
    return FakeHub(
        states={
            "presence-foo": ChannelState(True, 3, 2, None),
            "presence-bar": ChannelState(True, 1, 1, None),
            "public": ChannelState(True, 5, 0, None),
            "cache-news": ChannelState(True, 1, 0, CachedEvent("ev", '{"x":1}', 120)),
            "cache-empty": EMPTY,
        },
        members={"presence-foo": ["1", "2"]},
    )


def sign(app: App, method: str, path: str, body: bytes = b"", params: dict[str, str] | None = None,
         ts: float = NOW) -> str:
    """A signed raw query string, computed independently of the code under test."""
    query = {"auth_key": app.key, "auth_timestamp": str(int(ts)), "auth_version": "1.0", **(params or {})}
    if body:
        query["body_md5"] = hashlib.md5(body).hexdigest()
    message = "\n".join([method, path, "&".join(f"{k}={v}" for k, v in sorted(query.items()))])
    query["auth_signature"] = hmac.new(app.secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    return "&".join(f"{k}={v}" for k, v in query.items())


def call(hub: FakeHub, method: str, path: str, body: Any = None, app: App = APP,
         params: dict[str, str] | None = None) -> RestResponse:
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return handle(method, path, sign(app, method, path, raw, params), raw, NOW, APPS, hub)


def post_event(hub: FakeHub, app: App = APP, **fields: Any) -> RestResponse:
    payload = {"name": "ev", "channels": ["public"], "data": "{}", **fields}
    return call(hub, "POST", f"/apps/{app.id}/events", {k: v for k, v in payload.items() if v is not None},
                app=app)


def assert_error(response: RestResponse, status: int, message: str) -> None:
    assert response.status == status, response.text
    assert response.text == message
    assert ("Content-Type", "text/plain; charset=utf-8") in response.headers
    assert response.broadcasts == 0


def assert_json(response: RestResponse) -> Any:
    assert response.status == 200, response.text
    assert response.headers[0] == ("Content-Type", "application/json")
    return orjson.loads(response.body)

