"""settings.VASK parsing, the client built from it, and the system checks."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django_test_support import TEST_VASK

from vask.contrib.django import get_client, get_settings, vask_client
from vask.contrib.django.apps import check_settings
from vask.contrib.django.conf import build_settings

NO_ENV: dict[str, str] = {}


def test_defaults_point_at_a_local_vask_serve() -> None:
    config = build_settings({"APP_ID": "1", "KEY": "k", "SECRET": "s"}, NO_ENV)
    assert (config.host, config.port, config.use_tls) == ("127.0.0.1", 6001, False)
    assert (config.ws_host, config.ws_port, config.ws_use_tls) == ("127.0.0.1", 6001, False)
    assert not config.hosted_pusher and config.timeout == 5.0 and config.webhook_max_age == 300.0


def test_string_values_from_the_environment_are_coerced() -> None:
    config = build_settings({"APP_ID": " 42 ", "KEY": "k", "SECRET": "s", "PORT": "7001", "USE_TLS": "yes",
                             "TIMEOUT": "2.5", "WS_HOST": "ws.example.com", "WS_PORT": "443",
                             "CLUSTER": ""}, NO_ENV)
    assert (config.app_id, config.port, config.use_tls, config.timeout) == ("42", 7001, True, 2.5)
    assert (config.ws_host, config.ws_port, config.ws_use_tls, config.cluster) == ("ws.example.com", 443, True, None)


def test_url_form_and_explicit_keys_winning() -> None:
    url = "https://my%20key:s%2Fecret@vask.internal:7443/apps/1234567"
    config = build_settings({"URL": url}, NO_ENV)
    assert (config.app_id, config.key, config.secret) == ("1234567", "my key", "s/ecret")
    assert (config.host, config.port, config.use_tls) == ("vask.internal", 7443, True)
    assert build_settings({"URL": url, "PORT": 1}, NO_ENV).port == 1
    # VASK_URL from the environment when settings give no URL
    from_env = build_settings({}, {"VASK_URL": "http://k:s@127.0.0.1:6001/apps/9"})
    assert (from_env.app_id, from_env.host, from_env.port, from_env.use_tls) == ("9", "127.0.0.1", 6001, False)
    # an explicit empty URL in settings ignores the environment
    with pytest.raises(ImproperlyConfigured, match="missing APP_ID, KEY, SECRET"):
        build_settings({"URL": ""}, {"VASK_URL": "http://k:s@h/apps/9"})


def test_hosted_pusher_with_a_cluster_and_no_host() -> None:
    config = build_settings({"APP_ID": "1", "KEY": "k", "SECRET": "s", "CLUSTER": "eu"}, NO_ENV)
    assert config.hosted_pusher and config.use_tls and config.port is None and config.cluster == "eu"


@pytest.mark.parametrize(("raw", "message"), [
    ({"APP_ID": "app-id", "KEY": "k", "SECRET": "s"}, "must be numeric"),
    ({"APP_ID": "1", "KEY": "k"}, "missing SECRET"),
    ({"APP_ID": "1", "KEY": "k", "SECRET": "s", "PORTT": 1}, "unknown VASK setting"),
    ({"APP_ID": "1", "KEY": "k", "SECRET": "s", "PORT": "many"}, "must be a number"),
    ({"APP_ID": "1", "KEY": "k", "SECRET": "s", "USE_TLS": "maybe"}, "must be a boolean"),
    ({"URL": "redis://k:s@h/apps/1"}, "must look like"),
    ({"URL": "http://k:s@h/app/1"}, "must look like"),
])
def test_bad_settings_say_what_is_wrong(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        build_settings(raw, NO_ENV)


def connection(client: Any) -> tuple[Any, ...]:
    inner = client._pusher_client  # pusher.Pusher keeps its connection settings on this inner client
    return inner.app_id, inner.key, inner.host, inner.port, inner.ssl


def test_client_follows_settings_changes(settings: Any) -> None:
    client = get_client()
    assert connection(client) == ("123456", "test-key", "127.0.0.1", 6001, False)
    assert get_client() is client  # one instance per settings value
    assert vask_client._pusher_client is client._pusher_client
    settings.VASK = {**TEST_VASK, "KEY": "other-key", "HOST": "vask.internal", "PORT": "443", "USE_TLS": "1"}
    assert get_settings().key == "other-key"
    rebuilt = get_client()
    assert rebuilt is not client
    assert connection(rebuilt) == ("123456", "other-key", "vask.internal", 443, True)
    # the module-level singleton forwards to the rebuilt client
    assert vask_client._pusher_client is rebuilt._pusher_client


def test_client_for_hosted_pusher_uses_the_cluster(settings: Any) -> None:
    settings.VASK = {"APP_ID": "1", "KEY": "k", "SECRET": "s", "CLUSTER": "eu"}
    assert connection(get_client())[2:] == ("api-eu.pusher.com", 443, True)


def test_system_checks(settings: Any) -> None:
    assert check_settings() == []
    settings.VASK = {"APP_ID": "app-id", "KEY": "k", "SECRET": "s"}
    errors = check_settings()
    assert [e.id for e in errors] == ["vask.E001"] and "numeric" in errors[0].msg
    with pytest.raises(SystemCheckError, match=r"vask\.E001"):
        call_command("check")
    settings.VASK = {**TEST_VASK, "WS_HOST": "0.0.0.0"}
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "csrf" not in m.lower()]
    assert sorted(w.id for w in check_settings()) == ["vask.W001", "vask.W002"]
