"""The app model and the AppStore interface that every store implements."""

from __future__ import annotations

import re
import secrets
from typing import Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator

from vask.protocol import constants as c

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token

WEBHOOK_EVENT_TYPES = ("channel_occupied", "channel_vacated", "member_added", "member_removed", "client_event",
                       "cache_miss", "subscription_count")
# Headers Vask sets on every webhook request; a target's own headers may not replace them.
WEBHOOK_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection",
                                      "x-pusher-key", "x-pusher-signature"})


class WebhookTarget(BaseModel):
    """Where an app's webhooks go, and which of them (pusher-protocol.md §3)."""

    url: str
    event_types: list[str] = Field(default_factory=list)  # empty: every event type
    channel_prefix: str | None = None
    channel_suffix: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    batch: bool = False
    batch_window: float | None = Field(default=None, gt=0, le=10)  # seconds; None: the server's default

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        _ = parts.port  # raises ValueError on a port that is not a number in range
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a webhook URL must be http:// or https:// with a host")
        if any(ch.isspace() or not ch.isprintable() for ch in value.strip()):
            raise ValueError("a webhook URL may not contain spaces or control characters")
        return value.strip()

    @field_validator("event_types")
    @classmethod
    def _check_event_types(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in WEBHOOK_EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown webhook event type {unknown[0]!r}; known: {', '.join(WEBHOOK_EVENT_TYPES)}")
        return list(dict.fromkeys(value))

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in WEBHOOK_RESERVED_HEADERS or name.lower().startswith("x-vask-"):
                raise ValueError(f"header {name} is set by Vask and cannot be replaced")
            if any(ch in text for ch in "\r\n\0"):
                raise ValueError(f"header {name} has a line break or NUL in its value")
        return value


class AppSettings(BaseModel):
    """Per-app switches and limits. Defaults follow hosted Pusher (pusher-protocol.md §1.10)."""

    client_events: bool = False
    user_authentication_required: bool = False
    user_authentication_timeout: int = Field(default=c.USER_AUTH_TIMEOUT, ge=1)
    subscription_count_events: bool = False
    max_connections: int | None = Field(default=None, ge=0)  # None: unlimited
    max_client_events_per_second: int = Field(default=c.CLIENT_EVENTS_PER_SECOND, ge=0)
    max_backend_events_per_second: int | None = Field(default=None, ge=0)  # HTTP publishes; None: unlimited
    max_read_requests_per_second: int | None = Field(default=None, ge=0)  # HTTP reads; None: unlimited
    max_event_data_bytes: int = Field(default=c.MAX_EVENT_DATA_BYTES, ge=1)
    max_channels_per_trigger: int = Field(default=c.MAX_CHANNELS_PER_TRIGGER, ge=1)
    max_batch_size: int = Field(default=c.MAX_BATCH_SIZE, ge=1)
    max_event_name_length: int = Field(default=c.MAX_EVENT_NAME_LENGTH, ge=1)
    max_channel_name_length: int = Field(default=c.MAX_CHANNEL_NAME_LENGTH, ge=1)
    max_presence_members: int = Field(default=c.MAX_PRESENCE_MEMBERS, ge=1)
    max_presence_user_info_bytes: int = Field(default=c.MAX_PRESENCE_USER_INFO_BYTES, ge=1)
    max_presence_user_id_length: int = Field(default=c.MAX_PRESENCE_USER_ID_LENGTH, ge=1)
    activity_timeout: int = Field(default=c.ACTIVITY_TIMEOUT, ge=1)
    webhooks: list[WebhookTarget] = Field(default_factory=list)


class App(BaseModel):
    id: str
    key: str
    secret: str
    name: str = ""
    enabled: bool = True
    settings: AppSettings = Field(default_factory=AppSettings)
    # The billing account that owns the app; None is the built-in default account (vask.billing).
    account_id: str | None = None


def new_app(app_id: str | None = None, key: str | None = None, secret: str | None = None,
            name: str = "", settings: AppSettings | None = None, account_id: str | None = None) -> App:
    """Build an App, generating credentials that are not given."""
    return App(
        id=app_id or str(secrets.randbelow(9_000_000) + 1_000_000),
        key=key or secrets.token_hex(10),
        secret=secret or secrets.token_hex(10),
        name=name,
        settings=settings or AppSettings(),
        account_id=account_id,
    )


class AppExists(Exception):
    """An app with the same id or key is already stored."""


class AppNotFound(Exception):
    """No app with that id."""


class AppStoreError(Exception):
    """The store cannot be opened or reached (missing driver, unreachable server, unusable file or schema)."""


class AppStore(Protocol):
    """Durable storage of apps. Blocking calls: the server runs them off the event loop and caches results.

    Guarantees: ids and keys are unique (``create`` raises AppExists); ``get_*`` return None when absent;
    ``update`` replaces the whole record (raises AppNotFound).
    """

    def get_by_id(self, app_id: str) -> App | None: ...

    def get_by_key(self, key: str) -> App | None: ...

    def list(self) -> list[App]: ...

    def create(self, app: App) -> App: ...

    def update(self, app: App) -> App: ...

    def delete(self, app_id: str) -> bool: ...

    def close(self) -> None: ...
