"""Vask for Django: settings-driven pusher-http-python client, auth views, webhook signals, template tag.

Add ``"vask.contrib.django"`` to ``INSTALLED_APPS``, ``path("pusher/", include("vask.contrib.django.urls"))`` to
the URLs, a ``VASK`` dict to the settings, and ``{% load vask %}{% vask_config %}`` to the page. See
docs/django.md. Importing this package reads no settings and loads no models.
"""

from __future__ import annotations

from .client import get_client, trigger, trigger_on_commit, vask_client
from .conf import get_settings
from .public import public_config
from .registry import ChannelRegistry, authorizers, same_user

__all__ = ["ChannelRegistry", "authorizers", "get_client", "get_settings", "public_config", "same_user",
           "trigger", "trigger_on_commit", "vask_client"]
