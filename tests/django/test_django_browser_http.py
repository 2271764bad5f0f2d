"""The Django demo in headless Chromium on a network that blocks WebSockets: pusher-js falls back to HTTP.

The page's wsHost/wsPort point at a closed port (as a proxy that refuses the upgrade would leave it), and
``{% vask_config %}`` points httpHost/httpPort at Vask. pusher-js, after its WebSocket attempts fail, opens an
xhr_streaming session from the page's origin (the Django site) to Vask's port: a cross-origin request, so this
also runs the CORS preflight. Presence, private notifications and the feed keep working.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django_browser import DEMO_DIR, Browser, DemoSite, find_chromium, free_port, npm_ci, start_demo

pytestmark = pytest.mark.browser

pytest.importorskip("selenium", reason="the browser tests drive Chromium with selenium (pip install selenium)")

DEMO_APP = {"id": "1000001", "key": "demo-key", "secret": "demo-secret", "client_events": True}


@pytest.fixture
def blocked_demo(server_factory: Any, tmp_path: Path) -> Iterator[tuple[DemoSite, Any]]:
    find_chromium()
    npm_ci(DEMO_DIR)
    server = server_factory([DEMO_APP])
    app = server.app
    closed = str(free_port())  # nothing listens there: every WebSocket attempt is refused
    site = start_demo(f"http://{app.key}:{app.secret}@{server.host}:{server.port}/apps/{app.id}",
                      tmp_path / "demo.sqlite3", env={"VASK_WS_PORT": closed, "VASK_HTTP_PORT": str(server.port)})
    yield site, server
    site.stop()


@pytest.fixture
def browser() -> Iterator[Callable[[str], Browser]]:
    chromium, chromedriver = find_chromium()
    started: list[Browser] = []

    def start(name: str) -> Browser:
        started.append(Browser(name, chromium, chromedriver))
        return started[-1]

    yield start
    for one in started:
        one.quit()


def members(page: Browser) -> set[str]:
    return set(page.js("return Array.from(document.querySelectorAll('#presence [data-user-id]'))"
                       ".map(a => a.dataset.userId);"))


def test_demo_works_when_websockets_are_blocked(blocked_demo: tuple[DemoSite, Any],
                                                browser: Callable[[str], Browser]) -> None:
    demo, server = blocked_demo
    alice, bob = browser("alice"), browser("bob")
    alice.login(demo.url, "alice", "demo")
    bob.login(demo.url, "bob", "demo")
    ids = {page.name: json.loads(page.text("demo-page"))["userId"] for page in (alice, bob)}
    for page in (alice, bob):
        # pusher-js tries ws, then wss after 2 s, then the HTTP transports after 5 s
        page.wait(lambda page=page: page.text("connection-state") == "connected", "the HTTP fallback", timeout=30)
        transport = page.js("return window.demo.pusher.connection.connection.transport.name;")
        assert transport in ("xhr_streaming", "xhr_polling"), transport
        url = page.js("return window.demo.pusher.config.httpHost + ':' + window.demo.pusher.config.httpPort;")
        assert url == f"{server.host}:{server.port}"  # Vask, not sockjs.pusher.com

    alice.wait(lambda: alice.text("signed-in-as") == "Alice Martin", "signin_success")
    for page in (alice, bob):
        page.wait(lambda page=page: members(page) == {ids["alice"], ids["bob"]}, "both avatars on the document")

    alice.click("ship-button")  # a Django view publishes on alice's private channel
    alice.wait(lambda: any("has shipped" in item for item in alice.items("notifications")), "the notification")

    message = "through the fallback"
    bob.type("feed-text", message)
    bob.click("feed-button")
    for page in (alice, bob):
        page.wait(lambda page=page: page.items("feed")[:1] == [f"Bob Okafor {message}"], "the feed item")

    # pusher-js logs refused WebSocket attempts; nothing else may fail (a CORS refusal would show here)
    severe = [line for line in alice.console() + bob.console()
              if line.startswith("SEVERE") and "WebSocket" not in line and "ws://" not in line]
    assert severe == []

    bob.driver.get("about:blank")  # the demo disconnects on pagehide: bob's session ends, alice sees him go
    alice.wait(lambda: members(alice) == {ids["alice"]}, "bob's avatar to disappear", timeout=15)
