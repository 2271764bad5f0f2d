"""Django app config: imports every installed app's ``vask_channels`` module and checks ``settings.VASK``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules


class VaskConfig(AppConfig):
    name = "vask.contrib.django"
    label = "vask"
    verbose_name = "Vask (Pusher protocol)"

    def ready(self) -> None:
        # Authorization rules live next to the models they protect, as admin.py does for the admin.
        autodiscover_modules("vask_channels")
        checks.register(check_settings, "vask")


def check_settings(app_configs: Sequence[AppConfig] | None = None, **_: Any) -> list[checks.CheckMessage]:
    """``manage.py check``: the settings are complete and consistent, and CSRF is on."""
    from .conf import get_settings

    found: list[checks.CheckMessage] = []
    try:
        config = get_settings()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), hint="see docs/django.md", id="vask.E001")]
    if not config.hosted_pusher and config.ws_host in ("0.0.0.0", "::"):
        found.append(checks.Warning(
            f"the browser would connect to {config.ws_host}", hint="set VASK['WS_HOST'] to a public name",
            id="vask.W001"))
    if "django.middleware.csrf.CsrfViewMiddleware" not in settings.MIDDLEWARE:
        # Our auth views check CSRF themselves; the rest of the site should too.
        found.append(checks.Warning("CsrfViewMiddleware is not installed", id="vask.W002"))
    if not apps.is_installed("django.contrib.auth"):
        found.append(checks.Error("vask.contrib.django needs django.contrib.auth", id="vask.E002"))
    return found
