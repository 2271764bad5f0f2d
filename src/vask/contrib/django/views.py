"""Channel authorization, user authentication (``pusher:signin``) and webhook views.

The two auth views answer pusher-js' form POSTs (``socket_id``, ``channel_name``) for a logged-in user, with
CSRF protection on: the page passes the token as the ``X-CSRFToken`` header (``{% vask_config %}`` puts it in
the pusher-js options). Every refusal is a JSON body ``{"error": ..., "reason": ...}`` with a 4xx status, so a
browser console shows why a subscription failed. Subclass a view to change how the user is described.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse, QueryDict
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import decorator_from_middleware, method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from . import identity
from .client import get_client
from .conf import get_settings
from .registry import Decision, active_registry
from .webhooks import WebhookError, send_signals, verify

logger = logging.getLogger("vask.contrib.django")

# What pusher-http-python accepts (pusher/util.py); checked here so the refusal says which field is wrong.
_CHANNEL_CHARS = frozenset("-abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_=@,.;")
MAX_CHANNEL_LENGTH = 200


def refuse(reason: str, status: int = 403, error: str = "forbidden") -> JsonResponse:
    return JsonResponse({"error": error, "reason": reason}, status=status)


class _JsonCsrfMiddleware(CsrfViewMiddleware):
    """Django's own CSRF check, answering a refusal in JSON rather than with the HTML failure page."""

    def _reject(self, request: HttpRequest, reason: str) -> HttpResponse:
        logger.warning("CSRF check failed on %s: %s", request.path, reason)
        return refuse(f"CSRF check failed: {reason}", error="csrf_failed")


# The global CsrfViewMiddleware is told to skip these views (csrf_exempt) only because the same check runs
# here, inside them, whether or not that middleware is installed: protection never depends on MIDDLEWARE.
_csrf_checked_here = [csrf_exempt, decorator_from_middleware(_JsonCsrfMiddleware)]


def _valid_socket_id(value: str) -> bool:
    left, dot, right = value.partition(".")
    return bool(dot) and left.isascii() and left.isdigit() and right.isascii() and right.isdigit()


def _valid_channel(value: str) -> bool:
    return 0 < len(value) <= MAX_CHANNEL_LENGTH and set(value) <= _CHANNEL_CHARS


class _AuthView(View):
    http_method_names = ["post"]

    @method_decorator(_csrf_checked_here)
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not hasattr(request, "user"):
            logger.error("%s needs django.contrib.auth's AuthenticationMiddleware", type(self).__name__)
            return refuse("no user on the request: AuthenticationMiddleware is not installed", status=500,
                          error="misconfigured")
        if not request.user.is_authenticated:
            return refuse("login required", error="unauthenticated")
        return super().dispatch(request, *args, **kwargs)

    def http_method_not_allowed(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = refuse(f"{request.method} is not allowed; use POST", status=405, error="method_not_allowed")
        response["Allow"] = "POST"
        return response

    def params(self) -> QueryDict | dict[str, Any]:
        """The form fields pusher-js posts, or a JSON object (what some custom auth handlers send)."""
        if self.request.content_type == "application/json":
            try:
                body = json.loads(self.request.body)
            except ValueError:
                return {}
            return body if isinstance(body, dict) else {}
        return self.request.POST

    def socket_id(self) -> str | JsonResponse:
        value = self.params().get("socket_id")
        if not isinstance(value, str) or not _valid_socket_id(value):
            return refuse("socket_id is missing or malformed", status=400, error="bad_request")
        return value

    # Overridable descriptions of the user (defaults: vask.contrib.django.identity and VASK settings).
    def get_user_id(self, user: Any) -> str:
        return identity.user_id(user)

    def get_user_info(self, user: Any, channel: str | None) -> dict[str, Any]:
        return identity.user_info(user, channel)


class ChannelAuthView(_AuthView):
    """Authorizes subscriptions to private, private-encrypted and presence channels (``/pusher/auth``)."""

    def authorize(self, user: Any, channel: str) -> Decision:
        return active_registry().authorize(user, channel)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        socket_id = self.socket_id()
        if isinstance(socket_id, JsonResponse):
            return socket_id
        channel = self.params().get("channel_name")
        if not isinstance(channel, str) or not _valid_channel(channel):
            return refuse("channel_name is missing or not a valid channel name", status=400, error="bad_request")
        decision = self.authorize(request.user, channel)
        if not decision.allowed:
            return refuse(decision.reason)
        custom_data = None
        if channel.startswith("presence-"):
            info = decision.user_info if decision.user_info is not None else self.get_user_info(request.user, channel)
            custom_data = {"user_id": self.get_user_id(request.user), "user_info": info}
        elif channel.startswith("private-encrypted-") and get_settings().encryption_master_key_base64 is None:
            logger.error("cannot authorize %s: VASK['ENCRYPTION_MASTER_KEY_BASE64'] is not set", channel)
            return refuse("encrypted channels are not configured on this server", status=500, error="misconfigured")
        signed = get_client().authenticate(channel, socket_id, custom_data)
        # pusher-http-python gives the encrypted channels' shared_secret as base64 bytes
        return JsonResponse({k: v.decode() if isinstance(v, bytes) else v for k, v in signed.items()})


class UserAuthView(_AuthView):
    """Signs ``pusher:signin`` for the logged-in user (``/pusher/user-auth``)."""

    def get_user_data(self, user: Any) -> dict[str, Any]:
        return identity.user_data(user)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        socket_id = self.socket_id()
        if isinstance(socket_id, JsonResponse):
            return socket_id
        return JsonResponse(get_client().authenticate_user(socket_id, self.get_user_data(request.user)))


@method_decorator(csrf_exempt, name="dispatch")  # server-to-server: the signature is the authentication
class WebhookView(View):
    """Receives Vask's (or Pusher's) webhooks and sends the signals in :mod:`vask.contrib.django.signals`."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            payload = verify(get_settings(), request.body, request.headers.get("X-Pusher-Key"),
                             request.headers.get("X-Pusher-Signature"), time.time() * 1000)
        except WebhookError as refused:
            logger.warning("webhook refused: %s", refused.reason)
            return refuse(refused.reason, status=refused.status,
                          error="bad_request" if refused.status == 400 else "forbidden")
        return JsonResponse({"ok": True, "events": send_signals(type(self), payload)})


channel_auth = ChannelAuthView.as_view()
user_auth = UserAuthView.as_view()
webhook = WebhookView.as_view()
