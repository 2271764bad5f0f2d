"""{% vask_config %}: public settings only, escaped for a <script>, CSRF header for the auth calls."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.template import Context, Template, TemplateSyntaxError
from django.test import Client, RequestFactory
from django_test_support import TEST_VASK, alice_fixture  # noqa: F401  (fixtures)

from vask.contrib.django import public_config

pytestmark = pytest.mark.django_db

SCRIPT = re.compile(r"\A<script(?P<attrs>[^>]*)>window\.(?P<name>\w+) = (?P<json>.*);</script>\Z", re.S)


def render(source: str, context: dict[str, Any] | None = None) -> str:
    return Template("{% load vask %}" + source).render(Context(context or {})).strip()


def parsed(html: str) -> tuple[str, dict[str, Any]]:
    match = SCRIPT.match(html)
    assert match, html
    return match["name"], json.loads(match["json"])


def test_page_gets_the_pusher_js_options_and_its_csrf_token(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    html = client.get("/page").content.decode()
    script = html[html.index("<script"):html.index("</script>") + len("</script>")]
    name, config = parsed(script)
    token = config["options"]["channelAuthorization"]["headers"]["X-CSRFToken"]
    assert re.fullmatch(r"[A-Za-z0-9]{64}", token)  # a masked token: it differs per page, matches the cookie
    assert name == "VASK_PUSHER"
    assert config == {
        "key": "test-key",
        "options": {
            "wsHost": "127.0.0.1", "wsPort": 6001, "wssPort": 6001, "forceTLS": False, "cluster": "",
            # the HTTP fallback goes to Vask too, never to pusher-js' default sockjs.pusher.com
            "httpHost": "127.0.0.1", "httpPort": 6001, "httpsPort": 6001, "httpPath": "/pusher",
            "enabledTransports": ["ws", "wss", "xhr_streaming", "xhr_polling"],
            # the endpoints come from vask.contrib.django.urls as included by the project
            "channelAuthorization": {"endpoint": "/pusher/auth", "transport": "ajax",
                                     "headers": {"X-CSRFToken": token}},
            "userAuthentication": {"endpoint": "/pusher/user-auth", "transport": "ajax",
                                   "headers": {"X-CSRFToken": token}},
        },
    }
    # the rendered token is what the auth view accepts
    response = client.post("/pusher/auth", {"socket_id": "1.2", "channel_name": "private-autodiscovered.alice"},
                           HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content


def test_never_renders_the_secret(settings: Any) -> None:
    settings.VASK = {**TEST_VASK, "SECRET": "s3cr3t-value", "ENCRYPTION_MASTER_KEY_BASE64": "bWFzdGVyLWtleQ=="}
    html = render("{% vask_config %}", {"request": RequestFactory().get("/")})
    assert "s3cr3t-value" not in html and "bWFzdGVyLWtleQ" not in html
    assert "secret" not in html.lower()


def test_public_browser_endpoint_and_custom_auth_urls(settings: Any) -> None:
    settings.VASK = {**TEST_VASK, "HOST": "vask", "WS_HOST": "ws.example.com", "WS_PORT": "443",
                     "WS_USE_TLS": "true", "CHANNEL_AUTH_ENDPOINT": "/api/rt/auth",
                     "USER_AUTH_ENDPOINT": "/api/rt/signin"}
    _, config = parsed(render("{% vask_config %}"))
    options = config["options"]
    assert (options["wsHost"], options["wsPort"], options["wssPort"], options["forceTLS"]) == (
        "ws.example.com", 443, 443, True)
    assert options["channelAuthorization"] == {"endpoint": "/api/rt/auth", "transport": "ajax", "headers": {}}
    assert options["userAuthentication"]["endpoint"] == "/api/rt/signin"
    # the fallback follows the browser endpoint unless told otherwise
    assert (options["httpHost"], options["httpPort"], options["httpsPort"]) == ("ws.example.com", 443, 443)


def test_http_fallback_options(settings: Any) -> None:
    settings.VASK = {**TEST_VASK, "WS_HOST": "ws.example.com", "HTTP_HOST": "rt.example.com", "HTTP_PORT": "8443",
                     "HTTP_PATH": "/realtime"}
    options = parsed(render("{% vask_config %}"))[1]["options"]
    assert (options["httpHost"], options["httpPort"], options["httpsPort"], options["httpPath"]) == (
        "rt.example.com", 8443, 8443, "/realtime")
    settings.VASK = {**TEST_VASK, "HTTP_FALLBACK": "false"}
    options = parsed(render("{% vask_config %}"))[1]["options"]
    assert options["enabledTransports"] == ["ws", "wss"] and "httpHost" not in options
    settings.VASK = {**TEST_VASK, "HTTP_PATH": "realtime/"}
    with pytest.raises(ImproperlyConfigured, match="HTTP_PATH"):
        render("{% vask_config %}")


def test_hosted_pusher_options(settings: Any) -> None:
    settings.VASK = {"APP_ID": "1", "KEY": "hosted-key", "SECRET": "s", "CLUSTER": "eu"}
    config = public_config()
    assert config["key"] == "hosted-key"
    assert {k: v for k, v in config["options"].items() if "Auth" not in k} == {"cluster": "eu", "forceTLS": True}


def test_escaping_nonce_and_variable_name(settings: Any) -> None:
    settings.VASK = {**TEST_VASK, "KEY": "k</script><b>&"}
    html = render('{% vask_config nonce="n0nce" name="PUSHER_CONFIG" %}')
    assert html.startswith('<script nonce="n0nce">window.PUSHER_CONFIG = ')
    assert "</script><b>" not in html and html.count("</script>") == 1
    name, config = parsed(html)
    assert name == "PUSHER_CONFIG" and config["key"] == "k</script><b>&"
    with pytest.raises(TemplateSyntaxError):
        render('{% vask_config name="x;alert(1)" %}')
