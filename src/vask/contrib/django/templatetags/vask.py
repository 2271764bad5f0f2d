"""``{% load vask %}{% vask_config %}``: the pusher-js configuration as ``window.VASK_PUSHER``."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

from ..public import public_config

register = template.Library()

# Keep the JSON from closing the <script> element or opening a comment (as django's json_script does).
_SCRIPT_SAFE = {ord("<"): "\\u003C", ord(">"): "\\u003E", ord("&"): "\\u0026"}


@register.simple_tag(takes_context=True)
def vask_config(context: template.Context, nonce: str | None = None, name: str = "VASK_PUSHER") -> SafeString:
    """A ``<script>`` that sets ``window[name]``; ``nonce`` for a Content-Security-Policy."""
    if not (name.isascii() and name.isidentifier()):
        raise template.TemplateSyntaxError(f"vask_config: {name!r} is not a JavaScript identifier")
    request: Any = context.get("request")
    payload = json.dumps(public_config(request), sort_keys=True).translate(_SCRIPT_SAFE)
    script = f"window.{name} = {payload};"
    if nonce:
        return format_html('<script nonce="{}">{}</script>', nonce, SafeString(script))
    return format_html("<script>{}</script>", SafeString(script))
