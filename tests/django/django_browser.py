"""Headless Chromium (Debian's chromium + chromium-driver) through Selenium, and the demo project in a process.

Each :class:`Browser` is its own Chromium with a fresh profile, so two of them are two independent users (own
cookies, own pusher-js connection). Nothing is downloaded: the browser and driver are the system's.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "examples" / "django_demo"
ARTIFACTS = Path(os.environ.get("VASK_TEST_ARTIFACTS", REPO / "build" / "test-artifacts"))

# Flags that keep Chromium from reaching for the network (it stalls on a closed network without them).
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,760"]


def find_chromium() -> tuple[str, str]:
    """Paths of chromium and chromedriver, or a visible skip saying how to install them."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip("headless browser tests need Chromium and its driver: apt-get install chromium chromium-driver")
    return browser, driver


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def npm_ci(directory: Path) -> None:
    """Install pusher-js from the lock file (skips visibly when npm is missing)."""
    if (directory / "node_modules" / "pusher-js" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not on PATH: cannot install pusher-js in {directory}")
    done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=directory,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"npm ci failed in {directory}:\n{done.stdout}\n{done.stderr}")


@dataclass
class DemoSite:
    """``manage.py rundemo`` running against a Vask server, with its output kept for failure reports."""

    url: str
    env: dict[str, str]
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=DEMO_DIR, env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_demo(vask_url: str, database: Path, env: dict[str, str] | None = None) -> DemoSite:
    port = free_port()
    env = {**os.environ, "VASK_URL": vask_url, "DEMO_DB": str(database), "DEMO_DEBUG": "1",
           "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "demo_project.settings", **(env or {})}
    process = subprocess.Popen([sys.executable, "manage.py", "rundemo", f"127.0.0.1:{port}"], cwd=DEMO_DIR,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    site = DemoSite(f"http://127.0.0.1:{port}", env, process)
    stream = process.stdout
    assert stream is not None
    threading.Thread(target=lambda: site.output.extend(stream), daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the demo exited:\n" + "".join(site.output))
        try:
            with urllib.request.urlopen(f"{site.url}/login/", timeout=2) as response:
                if response.status == 200:
                    return site
        except OSError:
            time.sleep(0.2)
    site.stop()
    raise RuntimeError("the demo did not answer within 60 s:\n" + "".join(site.output))


class Browser:
    def __init__(self, name: str, chromium: str, chromedriver: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.name = name
        self.closed = False
        self.profile = tempfile.mkdtemp(prefix=f"vask-chromium-{name}-")
        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}"]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(chromedriver), options=options)
        self.driver.set_page_load_timeout(30)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
        """Poll ``condition`` until it returns something truthy; fail saying ``what`` was awaited."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {what}; console: {self.console()}")
            time.sleep(0.05)

    def text(self, element_id: str) -> str:
        return str(self.js("const e = document.getElementById(arguments[0]); return e ? e.textContent : '';",
                           element_id)).strip()

    def items(self, list_id: str) -> list[str]:
        return list(self.js("return Array.from(document.querySelectorAll('#' + arguments[0] + ' > li'))"
                            ".map(li => li.textContent.trim());", list_id))

    def click(self, element_id: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.ID, element_id).click()

    def type(self, element_id: str, text: str) -> None:
        from selenium.webdriver.common.by import By

        field_ = self.driver.find_element(By.ID, element_id)
        field_.clear()
        field_.send_keys(text)

    def login(self, site_url: str, username: str, password: str) -> None:
        self.driver.get(f"{site_url}/login/")
        self.type("id_username", username)
        self.type("id_password", password)
        self.click("login-submit")
        self.wait(lambda: "/docs/" in self.driver.current_url, "the document page after logging in")

    def console(self) -> list[str]:
        try:
            return [f"{entry['level']}: {entry['message']}" for entry in self.driver.get_log("browser")]
        except Exception:  # the log is best-effort diagnostics
            return []

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.driver.save_screenshot(str(path))
        return path

    def quit(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)
