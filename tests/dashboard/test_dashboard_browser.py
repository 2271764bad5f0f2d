"""End to end in headless Chromium against a real `vask serve`: sign up, create an app, see a real pusher-js
client's connection, see a pusher-http-python publish in the debug console, send with the event creator and
see pusher-js receive it, and check another account cannot open the app. Screenshots of every page are saved
under build/screenshots/ (docs/img/ holds copies)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pusher
import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "integration"), str(HERE.parent / "django")]
from django_browser import Browser, find_chromium  # noqa: E402
from js_helpers import JsClient  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.node]
SHOTS = Path(os.environ.get("VASK_SCREENSHOTS", HERE.parents[1] / "build" / "screenshots"))
DASH_RE = re.compile(r"Vask dashboard on (\S+)/ - one-time operator login \(valid 1 hour\): (\S+)")
LISTEN_RE = re.compile(r"listening on ws://([^:\s]+):(\d+)")


@dataclass
class Creds:
    id: str
    key: str
    secret: str


@dataclass
class Served:
    host: str
    port: int
    dashboard: str
    operator_link: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    app: Any = None

    def pusher(self, app: Any = None, **kwargs: Any) -> Any:
        app = app or self.app
        return pusher.Pusher(app_id=app.id, key=app.key, secret=app.secret, host=self.host, port=self.port,
                             ssl=False, **kwargs)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {**os.environ, "VASK_DATA_DIR": str(tmp_path / "data"), "VASK_ADMIN_PORT": "0",
           "VASK_STATS_FLUSH_INTERVAL": "0.5"}
    process = subprocess.Popen([sys.executable, "-m", "vask", "serve", "--port", "0", "--no-default-app"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    output: list[str] = []
    found: dict[str, Any] = {}
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            if m := DASH_RE.search(line):
                found["dash"] = m.groups()
            if m := LISTEN_RE.search(line):
                found["ws"] = (m.group(1), int(m.group(2)))
            if "dash" in found and "ws" in found:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(20):
        process.kill()
        pytest.fail("vask serve did not print its dashboard and listen lines:\n" + "".join(output))
    server = Served(found["ws"][0], found["ws"][1], found["dash"][0], found["dash"][1], process, output)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not on PATH: the pusher-js client needs Node.js >= 20")
    if not (HERE.parent / "js" / "node_modules" / "pusher-js").exists():
        pytest.skip("pusher-js is not installed: cd tests/js && npm ci")
    return path


def shot(browser: Browser, name: str, height: int = 900) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.driver.set_window_size(1280, height)
    time.sleep(0.3)  # a frame for the layout at the new size
    browser.driver.save_screenshot(str(SHOTS / f"{name}.png"))


def fill(browser: Browser, values: dict[str, str], form: str = "main form[method=post]") -> None:
    from selenium.webdriver.common.by import By

    scope = browser.driver.find_element(By.CSS_SELECTOR, form)
    for name, value in values.items():
        element = scope.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)
    scope.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def test_dashboard_end_to_end(served: Served, node: str) -> None:
    chromium, driver = find_chromium()
    a = Browser("account-a", chromium, driver)
    b = Browser("account-b", chromium, driver)
    client: JsClient | None = None
    base = served.dashboard
    try:
        a.driver.get(f"{base}/signup")
        shot(a, "signup", 760)
        fill(a, {"account": "Acme Chat", "email": "ada@acme.test", "password": "short"})
        a.wait(lambda: "at least 10 characters" in a.driver.page_source, "the password error")
        shot(a, "signup-error", 760)
        fill(a, {"account": "Acme Chat", "email": "ada@acme.test", "password": "a long enough password"})
        a.wait(lambda: a.driver.current_url.endswith("/apps"), "the apps page after signing up")
        fill(a, {"name": "acme-chat-production"})
        a.wait(lambda: "/keys" in a.driver.current_url, "the new app's keys")
        codes = a.js("return Array.from(document.querySelectorAll('dl.keys code')).map(c => c.textContent)")
        served.app = app = Creds(*codes)
        shot(a, "keys")

        client = JsClient(node, served, app)
        client.connect()
        client.subscribe("my-channel")
        client.bind("my-channel", "from-dashboard")
        a.driver.get(f"{base}/apps/{app.id}")
        a.wait(lambda: a.text("stat-connections") == "1", "the connection count to reach 1", timeout=15)
        assert a.text("stat-channels") == "1"

        a.driver.get(f"{base}/apps/{app.id}/console")
        a.wait(lambda: a.text("console-state") == "live", "the console stream to open")
        served.pusher().trigger("my-channel", "greeting", {"hello": "from pusher-http-python"})
        a.wait(lambda: a.js("return Array.from(document.querySelectorAll('.ev.t-api_message')).some("
                            "r => r.textContent.includes('greeting') && r.textContent.includes('my-channel'))"),
               "the API publish in the debug console")

        fill(a, {"channel": "my-channel", "event": "from-dashboard", "data": '{"sent": "by the event creator"}'},
             form="#event-creator")
        a.wait(lambda: a.text("creator-result").startswith("Sent"), "the event creator's answer")
        got = client.wait_for(type="bound", event="from-dashboard", timeout=10)
        assert got["data"] == {"sent": "by the event creator"}
        a.wait(lambda: a.js("return document.querySelectorAll('.ev.t-api_message').length >= 2"),
               "the event creator's publish in the console")
        shot(a, "console")
        fill(a, {"channel": "", "event": "pusher:bad"}, form="#event-creator")
        a.wait(lambda: "reserved for the protocol" in a.driver.page_source, "the event creator's validation")

        for _ in range(3):
            served.pusher().trigger("my-channel", "tick", {"n": 1})
        a.driver.get(f"{base}/apps/{app.id}")
        a.wait(lambda: a.text("stat-month") not in ("", "-", "\u2013", "0"), "this month's broadcasts", timeout=15)
        shot(a, "overview", 1100)
        a.driver.get(f"{base}/apps/{app.id}/settings")
        shot(a, "settings", 1150)
        a.driver.get(f"{base}/apps/{app.id}/webhooks")
        fill(a, {"url": "not a url"})
        a.wait(lambda: "http:// or https://" in a.driver.page_source, "the webhook URL error")
        shot(a, "webhooks", 1000)
        a.driver.get(f"{base}/account")
        shot(a, "usage", 1200)
        a.driver.get(f"{base}/calculator?broadcasts=2000000&subscribers=40")
        shot(a, "calculator", 800)

        b.driver.get(f"{base}/login")
        shot(b, "login", 700)
        b.driver.get(f"{base}/signup")
        fill(b, {"account": "Beta Corp", "email": "bert@beta.test", "password": "another long password"})
        b.wait(lambda: b.driver.current_url.endswith("/apps"), "account B's apps page")
        assert "acme-chat-production" not in b.driver.page_source
        for suffix in ("", "/keys", "/settings", "/webhooks", "/console"):
            b.driver.get(f"{base}/apps/{app.id}{suffix}")
            assert "404" in b.driver.title or "No such app" in b.driver.page_source, suffix
            assert app.secret not in b.driver.page_source
        shot(b, "other-account-404", 600)

        # the operator's one-time link: every account
        b.driver.get(served.operator_link)
        b.driver.get(f"{base}/accounts")
        assert "Acme Chat" in b.driver.page_source and "Beta Corp" in b.driver.page_source
        shot(b, "operator-accounts", 700)
    except BaseException:
        print("".join(served.output[-50:]))
        raise
    finally:
        if client is not None:
            client.close() if hasattr(client, "close") else client.process.kill()
        a.quit()
        b.quit()
