"""The public half of the settings: what pusher-js needs in the page. Never the secret.

``{% vask_config %}`` renders this as ``window.VASK_PUSHER = {"key": ..., "options": {...}}`` so the page does
``new Pusher(VASK_PUSHER.key, VASK_PUSHER.options)``; a single-page app can serve the same dict as JSON.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.urls import NoReverseMatch, reverse

from .conf import VaskSettings, get_settings

# pusher-js' own defaults, used when vask.contrib.django.urls is not included.
DEFAULT_CHANNEL_AUTH_ENDPOINT = "/pusher/auth"
DEFAULT_USER_AUTH_ENDPOINT = "/pusher/user-auth"


def _endpoint(configured: str | None, url_name: str, fallback: str) -> str:
    if configured is not None:
        return configured
    try:
        return reverse(url_name)
    except NoReverseMatch:
        return fallback


def pusher_options(config: VaskSettings, request: HttpRequest | None = None) -> dict[str, Any]:
    """Options for ``new Pusher(key, options)``; with ``request``, the auth calls carry its CSRF token."""
    headers = {"X-CSRFToken": get_token(request)} if request is not None else {}
    options: dict[str, Any] = {}
    if config.hosted_pusher:
        options.update(cluster=config.cluster, forceTLS=True)
    else:
        options.update(
            wsHost=config.ws_host, wsPort=config.ws_port, wssPort=config.ws_port, forceTLS=config.ws_use_tls,
            cluster=config.cluster or "",  # pusher-js requires the option; a self-hosted server ignores it
        )
        if config.http_fallback:
            # Where WebSockets are blocked pusher-js falls back to HTTP: to Vask, never to Pusher's sockjs hosts
            # (its httpHost default, even with wsHost set).
            options.update(httpHost=config.http_host, httpPort=config.http_port, httpsPort=config.http_port,
                           httpPath=config.http_path,
                           enabledTransports=["ws", "wss", "xhr_streaming", "xhr_polling"])
        else:
            options["enabledTransports"] = ["ws", "wss"]
    options["channelAuthorization"] = {
        "endpoint": _endpoint(config.channel_auth_endpoint, "vask:channel-auth", DEFAULT_CHANNEL_AUTH_ENDPOINT),
        "transport": "ajax", "headers": headers}
    options["userAuthentication"] = {
        "endpoint": _endpoint(config.user_auth_endpoint, "vask:user-auth", DEFAULT_USER_AUTH_ENDPOINT),
        "transport": "ajax", "headers": dict(headers)}
    return options


def public_config(request: HttpRequest | None = None) -> dict[str, Any]:
    """``{"key": ..., "options": ...}`` from ``settings.VASK``."""
    config = get_settings()
    return {"key": config.key, "options": pusher_options(config, request)}
