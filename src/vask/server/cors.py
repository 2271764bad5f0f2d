"""CORS for the HTTP API (``/apps/...``): off unless ``cors_origins`` names the origins that may call it.

With it off, responses carry no ``Access-Control-*`` header and a preflight (``OPTIONS``) gets the HTTP API's
usual 405, so a browser on another origin can neither read answers nor send signed requests. Health paths
never carry CORS headers.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vask.server.messages import Headers, HttpRequest

METHODS = "GET, POST"
MAX_AGE = "600"  # seconds a browser may cache a preflight answer




@functools.lru_cache(maxsize=8)
def allowed_origins(setting: str) -> frozenset[str]:
    return frozenset(part.strip().rstrip("/") for part in setting.split(",") if part.strip())


def _origin(request: HttpRequest) -> str | None:
    for name, value in request.headers:
        if name.lower() == "origin":
            return value
    return None


def _allowed(origins: frozenset[str], request: HttpRequest) -> str | None:
    """The value of Access-Control-Allow-Origin for this request, or None when it gets no CORS headers."""
    if not origins or not request.path.startswith("/apps/"):
        return None
    origin = _origin(request)
    if origin is None:
        return None
    if "*" in origins:
        return "*"
    return origin if origin.rstrip("/") in origins else None


def preflight(origins: frozenset[str], request: HttpRequest) -> Headers | None:
    """The headers of the 204 answering an allowed preflight, or None (the request goes on as any other)."""
    if request.method != "OPTIONS":
        return None
    allow = _allowed(origins, request)
    if allow is None or not any(name.lower() == "access-control-request-method" for name, _ in request.headers):
        return None
    return (("Access-Control-Allow-Origin", allow), ("Access-Control-Allow-Methods", METHODS),
            ("Access-Control-Allow-Headers", "Content-Type"), ("Access-Control-Max-Age", MAX_AGE),
            ("Vary", "Origin"))


def headers(origins: frozenset[str], request: HttpRequest) -> Headers:
    """What an answer to ``request`` adds: Access-Control-Allow-Origin when the request's origin is allowed."""
    allow = _allowed(origins, request)
    return () if allow is None else (("Access-Control-Allow-Origin", allow), ("Vary", "Origin"))
