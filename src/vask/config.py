"""Server configuration: one pydantic-settings model, read from defaults, a TOML file, env and CLI flags.

Precedence, highest first: CLI overrides (values that are not None) > ``VASK_*`` env variables > the TOML
file given to :meth:`Settings.load` > defaults. The TOML file is flat, with the field names as keys
(``port = 6001``), plus ``[[apps]]`` tables for declared apps (vask.apps.declared); unknown keys are errors
so that typos do not pass silently. An error names the setting and where its value came from: the option, the
``VASK_*`` variable, or the file and line.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from vask.apps.declared import DeclaredApp, check_unique
from vask.config_errors import describe
from vask.masking import SECRET_FIELD, mask_url, secret_mask
from vask.protocol import constants as c

StoreKind = Literal["sqlite", "postgresql", "memory"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

_SCHEMES: dict[str, StoreKind] = {"sqlite": "sqlite", "postgres": "postgresql",
                                  "postgresql": "postgresql", "memory": "memory"}

# The TOML file for the Settings being built. pydantic-settings picks its sources in a classmethod, so the
# path of one particular load() call has to reach it from outside; a ContextVar keeps threads apart.
_toml_file: ContextVar[Path | None] = ContextVar("vask_toml_file", default=None)


class ConfigError(ValueError):
    """The configuration cannot be loaded; the message says which file, variable or value is wrong."""


def default_data_dir() -> Path:
    """The per-user data directory (XDG on Linux), so the store does not depend on the current folder."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "vask"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VASK_", env_nested_delimiter="__", extra="forbid",
                                      env_ignore_empty=True, validate_default=True)

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=6001, ge=0, le=65535,
                      description="WebSocket and HTTP API port; 0 picks a free one.")
    data_dir: Path = Field(default_factory=default_data_dir,
                           description="Directory for the SQLite database and other state; default: the user's "
                                       "data directory ($XDG_DATA_HOME/vask, ~/.local/share/vask on Linux).")
    database_url: str | None = Field(
        default=None, description="App store: postgresql://..., sqlite:///path or memory://; "
                                  "unset means SQLite at <data_dir>/vask.db.")
    ssl_cert: Path | None = Field(default=None, description="TLS certificate (PEM); needs ssl_key.")
    ssl_key: Path | None = Field(default=None, description="TLS private key (PEM); needs ssl_cert.")
    create_default_app: bool = Field(
        default=True,
        description="Create the development app (id 100000, key app-key, secret app-secret) when the store has no "
                    "app and none is declared.")
    max_connections: int | None = Field(
        default=None, ge=0,
        description="Connections this node accepts before refusing with 4100; unset: no limit.")
    shutdown_grace: float = Field(default=10.0, ge=0, description="Seconds to drain connections on shutdown.")
    pong_timeout: int = Field(default=c.PONG_TIMEOUT, ge=1,
                              description="Seconds to wait for a pong after a ping.")
    max_ws_frame_bytes: int = Field(default=c.MAX_WS_FRAME_BYTES, ge=1,
                                    description="Largest WebSocket frame read.")
    max_http_body_bytes: int = Field(default=c.MAX_HTTP_BODY_BYTES, ge=1,
                                     description="Largest HTTP request body.")
    max_outbox_bytes: int = Field(
        default=c.MAX_OUTBOX_BYTES, ge=1,
        description="Unsent bytes a connection may hold before it is dropped.")
    app_cache_ttl: float = Field(
        default=5.0, ge=0,
        description="Seconds an app record is cached; changes made by the CLI show after this.")
    sweep_interval: float = Field(default=1.0, gt=0,
                                  description="Seconds between checks for idle connections.")
    log_level: LogLevel = Field(default="info", description="debug, info, warning, error or critical.")
    broker: str | None = Field(
        default=None, description="Scale-out engine shared by several nodes: redis://host:6379/0, "
                                  "redis+cluster://host:7000 (Redis Cluster, sharded pub/sub) or "
                                  "nats://host:4222; unset runs one node with the in-process broker.")
    broker_prefix: str = Field(default="vask", pattern=r"^[A-Za-z0-9_-]+$",
                               description="Namespace in Redis/NATS; separates deployments sharing one.")
    node_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$",
                                description="This node's id in the cluster; unset: generated at start.")
    region: str = Field(default="", description="Optional region label of this node.")
    node_timeout: float = Field(
        default=30.0, gt=0, description="Seconds without heartbeat after which a node counts as dead and its "
                                        "connections and presence members are removed.")
    workers: int = Field(default=1, ge=1, le=256,
                         description="Processes sharing the port (SO_REUSEPORT); more than 1 needs a broker.")
    usage_flush_interval: float = Field(
        default=1.0, gt=0, le=3600,
        description="Seconds between writes of metered usage to the store; a crash (kill -9) loses at most "
                    "this much usage. Quotas are checked in memory whatever the value.")
    admin_port: int = Field(default=9601, ge=0, le=65535,
                            description="Port of the admin HTTP API (usage, statements, metrics), on host; 0: any "
                                        "free port. With --workers N, worker i listens on admin_port + i.")
    admin_token: str | None = Field(
        default=None, description="Bearer token of the admin HTTP API; unset: the admin API is off.")
    # Webhooks (vask.webhooks). Webhook URLs are chosen by whoever manages an app, so by default they may not
    # point into the server's own network.
    webhook_allow_private: bool = Field(
        default=False, description="Allow webhook URLs that resolve to loopback, private, link-local (cloud "
                                   "metadata), CGNAT or other non-public addresses.")
    webhook_require_https: bool = Field(default=False, description="Refuse webhook URLs that are not https://.")
    webhook_timeout: float = Field(default=5.0, gt=0, le=60,
                                   description="Seconds one webhook request may take before it is retried.")
    webhook_retry_for: float = Field(
        default=300.0, ge=0, description="Seconds a failed webhook is retried (exponential backoff with "
                                         "jitter), counted from when it was queued for sending; then it is dropped "
                                         "and logged.")
    webhook_retry_base: float = Field(default=1.0, gt=0, description="Seconds before the first retry.")
    webhook_retry_max_delay: float = Field(default=60.0, gt=0, description="Longest pause between retries.")
    webhook_queue_size: int = Field(
        default=10_000, ge=1, description="Events waiting per webhook target (and debounced events in all); "
                                          "more are dropped, logged and counted.")
    webhook_concurrency: int = Field(
        default=4, ge=1, le=64, description="Requests in flight per webhook target without batching (a batching "
                                            "target sends one at a time); one channel's events always go through "
                                            "the same one, so they arrive in order.")
    webhook_vacate_delay: float = Field(
        default=3.0, ge=0, le=60, description="Seconds channel_vacated and member_removed wait; a re-join within "
                                              "them cancels both webhooks, as on Pusher.")
    webhook_batch_window: float = Field(
        default=0.05, gt=0, le=10, description="Seconds a batching target collects events into one request.")
    webhook_batch_max: int = Field(default=100, ge=1, le=1000, description="Most events in one batched request.")
    webhook_cache_miss_window: float = Field(
        default=1.0, ge=0, description="Seconds in which repeated cache_miss events of one channel are sent once "
                                       "(per node).")
    webhook_shutdown_grace: float = Field(
        default=5.0, ge=0, description="Seconds a graceful shutdown waits for pending webhooks to be delivered.")
    # pusher-js' HTTP fallback transports (vask.server.xhr): xhr_streaming and xhr_polling sessions.
    http_session_timeout: float = Field(
        default=5.0, gt=0, le=600, description="Seconds an HTTP-transport session lives without a receive "
                                                "request (a poll or a stream) before it counts as gone.")
    http_heartbeat_interval: float = Field(
        default=25.0, gt=0, le=300, description="Seconds between heartbeats on an open stream; a long poll is "
                                                "answered with a heartbeat after this long without messages.")
    # Deployment (issue 11): declared apps, proxies, health and metrics
    apps: list[DeclaredApp] = Field(
        default_factory=list, description="Apps created or updated at every start: [[apps]] tables with id, key, "
                                          "secret, name, enabled, overwrite_secret and a settings table; VASK_APPS "
                                          "takes a JSON list.")
    default_app_id: str | None = Field(
        default=None, description="Declare one app from the environment, like Soketi's SOKETI_DEFAULT_APP_ID; "
                                  "needs default_app_key and default_app_secret.")
    default_app_key: str | None = Field(default=None, description="Key of the app declared by default_app_id.")
    default_app_secret: str | None = Field(default=None,
                                           description="Secret of the app declared by default_app_id.")
    default_app_client_events: bool | None = Field(
        default=None, description="client_events of the app declared by default_app_id (Soketi's "
                                  "SOKETI_DEFAULT_APP_ENABLE_CLIENT_MESSAGES); unset: left as stored.")
    default_app_overwrite_secret: bool = Field(
        default=False, description="Replace the stored secret of the default_app_id app when it differs.")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For "
                                          "is believed; comma-separated in VASK_TRUSTED_PROXIES. Empty: the peer "
                                          "address is the client's.")
    metrics_require_token: bool = Field(
        default=True, description="Whether /metrics and /usage on the admin port need the admin token; false "
                                  "serves them to anyone who reaches admin_port (a private network), and starts "
                                  "the admin port even without admin_token.")
    accept_traffic_memory_threshold: float = Field(
        default=85.0, gt=0, le=100, description="Percent of the memory limit (cgroup, else physical memory) above "
                                                "which /accept-traffic answers 503, as Soketi's.")
    store_check_interval: float = Field(
        default=2.0, gt=0, le=300, description="Seconds between the checks of the app store and broker that "
                                               "/ready reports.")
    # CORS on the HTTP API (vask.server.cors). Off by default: the HTTP API is signed with the app secret, which a
    # browser must never hold, so cross-origin calls are the exception an operator opts into.
    cors_origins: str = Field(
        default="", description="Origins allowed to call the HTTP API from a browser (CORS), comma-separated "
                                "(https://admin.example.com), or * for any; empty: no CORS headers at all.")
    # Timeouts and floods (vask.server.http, vask.server.guard): every wait on a client is bounded (RELIABILITY.md).
    http_request_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a client has to send a whole HTTP request (headers and body, the "
                                        "WebSocket upgrade included), counted from its first byte or from the "
                                        "connection's opening; then the socket is dropped.")
    http_idle_timeout: float = Field(
        default=60.0, gt=0, description="Seconds an idle keep-alive HTTP connection is kept between requests.")
    ws_frame_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a started WebSocket frame (or fragmented message) has to "
                                        "complete; then the socket is dropped.")
    close_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for the client's side of a close (its close frame, or "
                                       "reading the last response) before the socket is dropped.")
    max_half_open: int = Field(
        default=10_000, ge=1, description="Sockets still in their HTTP phase (no complete request answered, or "
                                          "idle keep-alive) a node holds; past it the oldest is dropped.")
    max_connections_per_ip: int = Field(
        default=0, ge=0, description="Open sockets one source address may hold (HTTP and WebSocket); more get "
                                     "HTTP 429. 0: no cap. Leave 0 behind a proxy, or list it in "
                                     "trusted_proxies.")
    # Console, stats and logs (vask.console)
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text, or as one JSON object per line (json).")
    console_max_per_second: float = Field(
        default=50.0, gt=0, le=10_000, description="Default speed limit of one debug-console viewer, in events "
                                                   "per second; events above it are skipped and counted.")
    console_watch_interval: float = Field(
        default=2.0, gt=0, le=60, description="Seconds between a node's announcements of the apps its consoles "
                                              "watch; other nodes stop sending an app's events 3 intervals after "
                                              "the last one (a viewer's node that died).")
    stats_flush_interval: float = Field(
        default=10.0, gt=0, le=3600, description="Seconds between writes of per-minute stats to the store; a "
                                                 "crash loses at most this much.")
    stats_minute_retention: float = Field(
        default=48.0, ge=1, description="Hours of per-minute stats kept in the store (per-day stats are kept).")
    # Dashboard (vask.dashboard): the web UI on the control-plane port, beside the admin API
    dashboard_enabled: bool = Field(
        default=True, description="Serve the web dashboard on admin_port (`vask serve` prints a one-time "
                                  "operator login link); the admin API still needs admin_token.")
    dashboard_host: str | None = Field(
        default=None, description="Address the control plane (dashboard and admin API) listens on; unset: host.")
    dashboard_secure_cookies: bool | None = Field(
        default=None, description="Mark session cookies Secure (HTTPS only); unset: when ssl_cert is set. Turn on "
                                  "behind a TLS-terminating proxy.")
    dashboard_signup: bool = Field(
        default=True, description="Let anyone reaching the dashboard sign up (a new account on the free plan); "
                                  "off: operators invite people.")
    dashboard_public_url: str | None = Field(
        default=None, description="The dashboard's address as users reach it (printed links); unset: "
                                  "http://dashboard_host:admin_port.")

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Earlier sources win. No .env file or secrets dir: their discovery rules would surprise operators.
        toml_file = _toml_file.get()
        if toml_file is None:
            return init_settings, env_settings
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file)

    @classmethod
    def load(cls, config_path: Path | None = None, **overrides: Any) -> Settings:
        """Build the effective settings; overrides are CLI flags, and None means 'flag not given'."""
        if config_path is not None:
            if not config_path.is_file():
                raise ConfigError(f"config file not found: {config_path}")
            try:
                # Parsed here only to report syntax errors with the file name; the source re-reads it.
                tomllib.loads(config_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {config_path}: {exc}") from exc
        token = _toml_file.set(config_path)
        try:
            return cls(**{name: value for name, value in overrides.items() if value is not None})
        except ValidationError as exc:
            given = {name: value for name, value in overrides.items() if value is not None}
            raise ConfigError(describe(exc, config_path, given, cls.model_fields)) from exc
        finally:
            _toml_file.reset(token)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase_level(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in re.split(r"[\s,]+", value) if part]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
        return value

    @field_validator("default_app_id", "default_app_key")
    @classmethod
    def _check_default_app_token(cls, value: str | None) -> str | None:
        from vask.apps.declared import TOKEN

        if value is not None and not TOKEN.fullmatch(value):
            raise ValueError("use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit")
        return value

    @field_validator("default_app_secret")
    @classmethod
    def _check_default_app_secret(cls, value: str | None) -> str | None:
        if value is not None and (not value.isprintable() or any(ch.isspace() for ch in value)):
            raise ValueError("must be printable and without spaces")
        return value

    @field_validator("data_dir", "ssl_cert", "ssl_key")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in _SCHEMES:
            raise ValueError("must start with postgresql://, postgres://, sqlite:/// or memory://")
        if _SCHEMES[scheme.lower()] == "sqlite" and not rest.removeprefix("/"):
            raise ValueError("sqlite URLs need a file path: sqlite:///relative.db or sqlite:////absolute.db")
        return value

    @model_validator(mode="after")
    def _ssl_pair(self) -> Settings:
        if (self.ssl_cert is None) != (self.ssl_key is None):
            raise ValueError("ssl_cert and ssl_key must be given together")
        return self

    @model_validator(mode="after")
    def _admin_ports(self) -> Settings:
        if self.admin_token and self.admin_port and self.admin_port + self.workers - 1 > 65535:
            raise ValueError(f"admin_port {self.admin_port} leaves no port for each of the {self.workers} workers "
                             "(worker i uses admin_port + i)")
        return self

    @model_validator(mode="after")
    def _declared_apps(self) -> Settings:
        given = [self.default_app_id, self.default_app_key, self.default_app_secret]
        if any(given) and not all(given):
            raise ValueError("default_app_id, default_app_key and default_app_secret must be given together")
        check_unique(self.declared_apps())
        return self

    def declared_apps(self) -> list[DeclaredApp]:
        """The [[apps]] tables, plus the app of default_app_id/key/secret when given."""
        apps = list(self.apps)
        if self.default_app_id and self.default_app_key and self.default_app_secret:
            apps.append(DeclaredApp(
                id=self.default_app_id, key=self.default_app_key, secret=self.default_app_secret,
                overwrite_secret=self.default_app_overwrite_secret,
                settings={} if self.default_app_client_events is None
                else {"client_events": self.default_app_client_events}))
        return apps

    @property
    def store_kind(self) -> StoreKind:
        if self.database_url is None:
            return "sqlite"
        return _SCHEMES[self.database_url.partition("://")[0].lower()]

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file of the app store, or None when the store is not SQLite.

        ``sqlite:///x.db`` is relative to the working directory and ``sqlite:////x.db`` absolute, as in
        SQLAlchemy URLs.
        """
        if self.database_url is None:
            return self.data_dir / "vask.db"
        if self.store_kind != "sqlite":
            return None
        return Path(self.database_url.partition("://")[2].removeprefix("/")).expanduser()

    @property
    def tls(self) -> bool:
        return self.ssl_cert is not None

    def masked_dict(self) -> dict[str, Any]:
        """All settings as JSON-compatible values, with passwords and secrets replaced by ***."""
        data = self.model_dump(mode="json")
        for app in data.get("apps", []):
            app["secret"] = secret_mask(app.get("secret"))
        for name, value in data.items():
            if not isinstance(value, str):
                continue
            if name.endswith("_url") or name == "broker":
                data[name] = mask_url(value)
            elif SECRET_FIELD.search(name):
                data[name] = secret_mask(value)
        return data
