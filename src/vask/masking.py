"""Secrets out of sight: what config dumps, logs and error messages show instead of a password or token."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
SECRET_FIELD = re.compile(r"secret|password|passphrase|token", re.IGNORECASE)
_SECRET_QUERY_PARAMS = {"password", "sslpassword"}


def secret_mask(value: str | None) -> str | None:
    """Hide a secret but keep 'unset' visible: None and "" stay as they are."""
    return MASK if value else value


def mask_url(url: str) -> str:
    """The URL with its password (in the userinfo or a ``password=`` query parameter) replaced by ***."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    userinfo, at, hostport = netloc.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if at and colon:
        netloc = f"{user}:{MASK}@{hostport}"
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(k.lower() in _SECRET_QUERY_PARAMS for k, _ in pairs):
        query = urlencode([(k, MASK if k.lower() in _SECRET_QUERY_PARAMS else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # untouched: re-assembling would drop the empty authority of sqlite:///relative URLs
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
