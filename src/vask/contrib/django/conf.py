"""``settings.VASK``: one dict, read once into a frozen :class:`VaskSettings`.

Every value may be a string, so settings can come straight from the environment::

    VASK = {
        "APP_ID": os.environ["VASK_APP_ID"],
        "KEY": os.environ["VASK_KEY"],
        "SECRET": os.environ["VASK_SECRET"],
        "HOST": os.environ.get("VASK_SERVER_HOST", "127.0.0.1"),
        "PORT": os.environ.get("VASK_SERVER_PORT", "6001"),      # "6001" and 6001 both work
        "USE_TLS": os.environ.get("VASK_USE_TLS", "false"),      # "1"/"true"/"yes"/"on"
    }

or from one URL in Pusher's ``PUSHER_URL`` form, ``http[s]://KEY:SECRET@HOST[:PORT]/apps/APP_ID``, given as
``VASK["URL"]`` or, when that key is absent, the ``VASK_URL`` environment variable. Explicit keys win over the
URL. With ``CLUSTER`` and no ``HOST`` (nor URL) the settings describe hosted Pusher, which keeps the way back open.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6001  # `vask serve` listens here, with or without TLS

_STRINGS = ("APP_ID", "KEY", "SECRET", "HOST", "CLUSTER", "ENCRYPTION_MASTER_KEY_BASE64", "WS_HOST",
            "CHANNEL_AUTH_ENDPOINT", "USER_AUTH_ENDPOINT", "USER_ID", "USER_INFO", "USER_DATA", "AUTHORIZERS",
            "HTTP_HOST", "HTTP_PATH")
_INTS = ("PORT", "WS_PORT", "HTTP_PORT")
_FLOATS = ("TIMEOUT", "WEBHOOK_MAX_AGE")
_BOOLS = ("USE_TLS", "WS_USE_TLS", "HTTP_FALLBACK")
KNOWN_KEYS = frozenset(("URL", *_STRINGS, *_INTS, *_FLOATS, *_BOOLS))
_TRUE = frozenset(("1", "true", "yes", "on"))
_FALSE = frozenset(("0", "false", "no", "off"))


@dataclass(frozen=True)
class VaskSettings:
    app_id: str
    key: str
    secret: str
    host: str | None  # None only for hosted Pusher (``cluster`` set)
    port: int | None
    use_tls: bool
    cluster: str | None = None
    timeout: float = 5.0
    encryption_master_key_base64: str | None = None
    # What the browser connects to, when it differs from what Django uses (e.g. a public TLS proxy in front).
    ws_host: str | None = None
    ws_port: int | None = None
    ws_use_tls: bool = False
    # None: the URLs of vask.contrib.django.urls when included, else pusher-js' defaults.
    channel_auth_endpoint: str | None = None
    user_auth_endpoint: str | None = None
    webhook_max_age: float = 300.0  # seconds; pusher-http-python's validate_webhook uses 5 minutes
    # Dotted paths of callables that override the defaults in vask.contrib.django.identity.
    user_id: str | None = None
    user_info: str | None = None
    user_data: str | None = None
    authorizers: str | None = None  # dotted path of a ChannelRegistry; default: registry.authorizers
    # pusher-js' HTTP fallback (xhr_streaming, xhr_polling) for networks that block WebSockets: served by Vask on
    # its own port. Left unset, pusher-js would send it to Pusher's sockjs hosts.
    http_fallback: bool = True
    http_host: str | None = None
    http_port: int | None = None
    http_path: str = "/pusher"

    @property
    def hosted_pusher(self) -> bool:
        return self.host is None


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ImproperlyConfigured(f"VASK[{name!r}] must be a boolean (true/false/1/0), got {value!r}")


def _to_number(name: str, value: Any, kind: Callable[[Any], Any]) -> Any:
    try:
        number = kind(str(value).strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"VASK[{name!r}] must be a number, got {value!r}") from None
    if number <= 0:
        raise ImproperlyConfigured(f"VASK[{name!r}] must be positive, got {value!r}")
    return number


def parse_url(url: str) -> dict[str, Any]:
    """``http[s]://KEY:SECRET@HOST[:PORT]/apps/APP_ID`` (Pusher's ``PUSHER_URL`` form) as VASK keys."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/").split("/")
    if parts.scheme not in ("http", "https") or len(path) != 3 or path[1] != "apps" or not parts.hostname:
        raise ImproperlyConfigured(f"VASK URL must look like http://KEY:SECRET@HOST:PORT/apps/APP_ID, got {url!r}")
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"VASK URL has a bad port: {url!r}") from None
    found: dict[str, Any] = {"APP_ID": path[2], "HOST": parts.hostname, "USE_TLS": parts.scheme == "https",
                             "KEY": unquote(parts.username or ""), "SECRET": unquote(parts.password or "")}
    if port is not None:
        found["PORT"] = port
    return found


def build_settings(raw: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> VaskSettings:
    """Validate a ``VASK`` dict (``raw``) into :class:`VaskSettings`; ``environ`` supplies ``VASK_URL``."""
    environ = os.environ if environ is None else environ
    raw = dict(raw or {})
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ImproperlyConfigured(f"unknown VASK setting(s) {unknown}; known: {sorted(KNOWN_KEYS)}")
    url = raw.pop("URL") if "URL" in raw else environ.get("VASK_URL")
    values: dict[str, Any] = parse_url(str(url)) if not _blank(url) else {}
    values.update({name: value for name, value in raw.items() if not _blank(value)})

    missing = [name for name in ("APP_ID", "KEY", "SECRET") if _blank(values.get(name))]
    if missing:
        raise ImproperlyConfigured(
            f"VASK is missing {', '.join(missing)}: set them in settings.VASK or give VASK_URL="
            "http://KEY:SECRET@HOST:PORT/apps/APP_ID")
    for name in _STRINGS:
        if name in values:
            values[name] = str(values[name]).strip()
    if not values["APP_ID"].isdigit():
        raise ImproperlyConfigured(
            f"VASK['APP_ID'] must be numeric (pusher-http-python refuses other ids), got {values['APP_ID']!r}; "
            "create an app with one: vask apps create --id 1234567")
    for name in _INTS:
        if name in values:
            values[name] = _to_number(name, values[name], int)
    for name in _FLOATS:
        if name in values:
            values[name] = _to_number(name, values[name], float)
    for name in _BOOLS:
        if name in values:
            values[name] = _to_bool(name, values[name])

    cluster = values.get("CLUSTER")
    host = values.get("HOST")
    if host is None and cluster is None:
        host = DEFAULT_HOST
    port = values.get("PORT", DEFAULT_PORT if host is not None else None)
    use_tls = values.get("USE_TLS", host is None)  # hosted Pusher is TLS-only
    return VaskSettings(
        app_id=values["APP_ID"], key=values["KEY"], secret=values["SECRET"], host=host, port=port,
        use_tls=use_tls, cluster=cluster, timeout=values.get("TIMEOUT", 5.0),
        encryption_master_key_base64=values.get("ENCRYPTION_MASTER_KEY_BASE64"),
        ws_host=values.get("WS_HOST", host), ws_port=values.get("WS_PORT", port),
        ws_use_tls=values.get("WS_USE_TLS", use_tls),
        channel_auth_endpoint=values.get("CHANNEL_AUTH_ENDPOINT"),
        user_auth_endpoint=values.get("USER_AUTH_ENDPOINT"),
        webhook_max_age=values.get("WEBHOOK_MAX_AGE", 300.0),
        user_id=values.get("USER_ID"), user_info=values.get("USER_INFO"), user_data=values.get("USER_DATA"),
        authorizers=values.get("AUTHORIZERS"),
        http_fallback=values.get("HTTP_FALLBACK", True),
        http_host=values.get("HTTP_HOST", values.get("WS_HOST", host)),
        http_port=values.get("HTTP_PORT", values.get("WS_PORT", port)),
        http_path=_http_path(values.get("HTTP_PATH", "/pusher")),
    )


def _http_path(path: str) -> str:
    if path and (not path.startswith("/") or path.endswith("/")):
        raise ImproperlyConfigured(f"VASK['HTTP_PATH'] must start with / and not end with one, got {path!r}")
    return path


@lru_cache(maxsize=1)
def get_settings() -> VaskSettings:
    """The validated settings (cached; ``override_settings(VASK=...)`` clears the cache)."""
    raw = getattr(django_settings, "VASK", None)
    if raw is not None and not isinstance(raw, Mapping):
        raise ImproperlyConfigured("settings.VASK must be a dict")
    return build_settings(raw)


def load_callable(path: str | None, default: Callable[..., Any]) -> Callable[..., Any]:
    """The callable at dotted ``path`` (a setting that overrides a default), or ``default``."""
    if path is None:
        return default
    found = import_string(path)
    if not callable(found):
        raise ImproperlyConfigured(f"{path} is not callable")
    return found  # type: ignore[no-any-return]


def _reset(*, setting: str, **_: Any) -> None:
    if setting == "VASK":
        get_settings.cache_clear()


setting_changed.connect(_reset, dispatch_uid="vask.contrib.django.conf.reset")
