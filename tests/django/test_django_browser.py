"""End to end: examples/django_demo and ``vask serve`` running, two users in two headless Chromiums.

The page loads pusher-js from the npm package (served by Django's staticfiles), authorizes through the
contrib views with CSRF on, and receives what Django publishes through pusher-http-python. A screenshot of
the page is saved under build/test-artifacts/ (or $VASK_TEST_ARTIFACTS).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django_browser import DEMO_DIR, Browser, DemoSite, find_chromium, npm_ci, start_demo

pytestmark = pytest.mark.browser

pytest.importorskip("selenium", reason="the browser tests drive Chromium with selenium (pip install selenium)")

DEMO_APP = {"id": "1000001", "key": "demo-key", "secret": "demo-secret", "client_events": True}


@pytest.fixture
def demo(server_factory: Any, tmp_path: Path) -> Iterator[DemoSite]:
    find_chromium()  # skip before starting anything when there is no browser
    npm_ci(DEMO_DIR)
    server = server_factory([DEMO_APP])
    app = server.app
    site = start_demo(f"http://{app.key}:{app.secret}@{server.host}:{server.port}/apps/{app.id}",
                      tmp_path / "demo.sqlite3")
    yield site
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
    ids = page.js("return Array.from(document.querySelectorAll('#presence [data-user-id]'))"
                  ".map(a => a.dataset.userId);")
    return set(ids)


def test_two_users_see_each_other_notifications_and_the_feed(demo: DemoSite, browser: Callable[[str], Browser]) -> None:
    alice, bob = browser("alice"), browser("bob")
    alice.login(demo.url, "alice", "demo")
    bob.login(demo.url, "bob", "demo")
    ids = {page.name: json.loads(page.text("demo-page"))["userId"] for page in (alice, bob)}

    for page in (alice, bob):
        page.wait(lambda page=page: page.text("connection-state") == "connected", "pusher-js to connect")

    # pusher-js is the npm package's file, served by Django, not a CDN copy
    script = alice.js("return document.querySelector('script[src*=\"pusher\"]').src;")
    assert script == f"{demo.url}/static/pusher-js/pusher.min.js"
    with urllib.request.urlopen(script) as served:
        assert served.read() == (DEMO_DIR / "node_modules/pusher-js/dist/web/pusher.min.js").read_bytes()
    assert alice.js("return typeof Pusher;") == "function"

    # pusher:signin through /pusher/user-auth
    alice.wait(lambda: alice.text("signed-in-as") == "Alice Martin", "signin_success")
    bob.wait(lambda: bob.text("signed-in-as") == "Bob Okafor", "signin_success")

    # presence on the shared document: each sees both avatars, with the user_info from the settings' USER_INFO
    for page in (alice, bob):
        page.wait(lambda page=page: members(page) == {ids["alice"], ids["bob"]}, "both avatars on the document")
    assert alice.text("presence-count") == "2 viewing"
    assert alice.js(f"return document.querySelector('#presence [data-user-id=\"{ids['bob']}\"]').textContent;") == "BO"

    # a notification triggered by a Django view appears in the panel without a page load
    alice.js("window.sameDocument = true;")
    alice.click("ship-button")
    alice.wait(lambda: any("has shipped" in item for item in alice.items("notifications")), "the notification")
    assert alice.js("return window.sameDocument === true;"), "the page was reloaded"
    assert alice.text("unread") == "1"
    shipped = alice.items("notifications")[0]
    # ... and one triggered outside a request (a management command, as a task queue would)
    assert "for bob" in demo.manage("ship_order", "bob")
    bob.wait(lambda: len(bob.items("notifications")) == 1, "bob's notification")
    assert "has shipped" in bob.items("notifications")[0] and bob.items("notifications")[0] != shipped
    # alice's private channel carried only hers
    assert alice.items("notifications") == [shipped]

    # the live feed reaches both
    message = "Ship it at five — ça marche?"
    bob.type("feed-text", message)
    bob.click("feed-button")
    for page in (alice, bob):
        page.wait(lambda page=page: page.items("feed")[:1] == [f"Bob Okafor {message}"], "the feed item")
    assert bob.js("return document.getElementById('feed-text').value;") == ""

    severe = [line for line in alice.console() + bob.console() if line.startswith("SEVERE")]
    assert severe == []

    # bob's browser cannot subscribe to alice's orders: the registry refuses it with 403
    bob.js("""
        window.refused = null;
        const channel = window.demo.pusher.subscribe(arguments[0]);
        channel.bind('pusher:subscription_error', (error) => { window.refused = error.status; });
    """, f"private-orders.{ids['alice']}")
    assert bob.wait(lambda: bob.js("return window.refused;"), "the subscription error") == 403

    screenshot = alice.screenshot("django-demo.png")
    assert screenshot.stat().st_size > 10_000

    # bob leaves the document: alice sees his avatar go (the page may sit in Chrome's back/forward cache; the
    # demo disconnects on pagehide so that it does not stay "viewing")
    bob.driver.get("about:blank")
    alice.wait(lambda: members(alice) == {ids["alice"]}, "bob's avatar to disappear")
    assert alice.text("presence-count") == "1 viewing"
    # he comes back with the back button; then alice closes her browser, and bob sees her go
    bob.driver.back()
    alice.wait(lambda: members(alice) == {ids["alice"], ids["bob"]}, "bob's avatar to come back")
    bob.wait(lambda: members(bob) == {ids["alice"], ids["bob"]}, "both avatars after coming back")
    alice.quit()
    bob.wait(lambda: members(bob) == {ids["bob"]}, "alice's avatar to disappear")
    assert bob.text("presence-count") == "1 viewing"
