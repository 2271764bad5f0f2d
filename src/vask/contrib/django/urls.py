"""``path("pusher/", include("vask.contrib.django.urls"))`` gives pusher-js' default endpoints.

``/pusher/auth`` (channel authorization), ``/pusher/user-auth`` (sign-in) and ``/pusher/webhook``; the URL names
are ``vask:channel-auth``, ``vask:user-auth`` and ``vask:webhook``.
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "vask"

urlpatterns = [
    path("auth", views.channel_auth, name="channel-auth"),
    path("user-auth", views.user_auth, name="user-auth"),
    path("webhook", views.webhook, name="webhook"),
]
