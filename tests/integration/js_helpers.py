"""Drive pusher-js 8 clients under Node (tests/js/driver.mjs) from pytest, one Node process per client.

Each client is a browser tab: it connects with the options a self-hosted app uses, and asks the test for
channel authorization and user authentication through pusher-js' ``customHandler`` hooks. The test answers
with pusher-http-python's ``authenticate()`` / ``authenticate_user()``, so the real signature strings reach
the server. Everything the client sees comes back as timestamped JSON lines (see the header of driver.mjs).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pusher
import pytest

JS_DIR = Path(__file__).resolve().parent.parent / "js"
DRIVER = JS_DIR / "driver.mjs"
DEFAULT_TIMEOUT = 5.0

Event = dict[str, Any]
AuthHandler = Callable[[str, str, "str | None"], dict[str, Any]]


def _npm_install() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not on PATH: cannot install pusher-js for the Node scenarios")
    command = [npm, "ci" if (JS_DIR / "package-lock.json").exists() else "install", "--no-audit", "--no-fund"]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed in {JS_DIR}:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session", name="node_env")
def node_env_fixture() -> str:
    """The node executable, with tests/js/node_modules installed (skips visibly when Node is missing)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH: the pusher-js scenarios need Node.js >= 20")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < 20:
        pytest.skip(f"the pusher-js scenarios need Node.js >= 20, found {version}")
    if not (JS_DIR / "node_modules" / "pusher-js" / "package.json").exists():
        _npm_install()
    return node


def signer(server: Any, app: Any = None, **kwargs: Any) -> Any:
    """A pusher-http-python client for ``app`` on ``server`` (used to answer auth requests)."""
    return server.pusher(app, **kwargs)


def bad_signer(server: Any, app: Any = None) -> Any:
    """A pusher-http-python client that signs with a wrong secret."""
    app = app or server.app
    return pusher.Pusher(app_id=app.id, key=app.key, secret="not-the-secret", host=server.host, port=server.port,
                         ssl=False)


def error_code(event: Event) -> Any:
    """The Pusher error code of a connection 'error' report (pusher-js wraps handshake errors once more)."""
    error = event.get("error") or {}
    if error.get("type") == "WebSocketError" and isinstance(error.get("error"), dict):
        error = error["error"]
    if error.get("type") != "PusherError":
        return None
    return (error.get("data") or {}).get("code")


def matches(event: Event, criteria: dict[str, Any], predicate: Callable[[Event], bool] | None = None) -> bool:
    for key, want in criteria.items():
        if event.get(key) != want:
            return False
    return predicate is None or bool(predicate(event))


class JsClient:
    """One pusher-js instance in its own Node process."""

    def __init__(self, node: str, server: Any, app: Any = None, *, name: str = "js",
                 user: dict[str, Any] | None = None, presence: dict[str, Any] | None = None,
                 auth_signer: Any = None, auth_handler: AuthHandler | None = None) -> None:
        self.name = name
        self.server = server
        self.app = app or server.app
        self.user = user  # user_data for pusher.signin() (authenticate_user)
        self.presence = presence  # channel_data for presence channels (user_id, user_info)
        self.signer = auth_signer or signer(server, self.app)
        self.auth_handler = auth_handler
        self.auth_requests: list[Event] = []
        self.events: list[Event] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._next_id = 0
        self.process = subprocess.Popen([node, str(DRIVER)], cwd=JS_DIR, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.wait_for(type="ready", timeout=15)

    # -- plumbing -------------------------------------------------------------------------------------
    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"type": "stdout", "line": line.rstrip("\n"), "t": time.time() * 1000}
            if event.get("type") == "auth_request":
                self._answer_auth(event)
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()
        with self._cond:
            self.events.append({"type": "exited", "t": time.time() * 1000})
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def _answer_auth(self, request: Event) -> None:
        self.auth_requests.append(request)
        answer: dict[str, Any] = {"cmd": "auth_response", "req": request["req"]}
        try:
            answer["response"] = self.authorize(request["kind"], request["socket_id"], request.get("channel_name"))
        except Exception as exc:  # the test's auth endpoint "fails": pusher-js reports an auth error
            answer["error"] = f"{type(exc).__name__}: {exc}"
        self._write(answer)

    def authorize(self, kind: str, socket_id: str, channel: str | None) -> dict[str, Any]:
        """What the app's auth endpoint returns; computed with pusher-http-python."""
        if self.auth_handler is not None:
            return self.auth_handler(kind, socket_id, channel)
        if kind == "user":
            if self.user is None:
                raise PermissionError("this client has no user to sign in")
            return dict(self.signer.authenticate_user(socket_id, self.user))
        assert channel is not None
        if channel.startswith("presence-") and self.presence is not None:
            response = self.signer.authenticate(channel, socket_id, self.presence)
        else:
            response = self.signer.authenticate(channel, socket_id)
        response = dict(response)
        if isinstance(response.get("shared_secret"), bytes):  # pusher-http-python 3.3.x returns bytes
            response["shared_secret"] = response["shared_secret"].decode("ascii")
        return response

    def _write(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        try:
            with self._write_lock:
                self.process.stdin.write(json.dumps(message) + "\n")
                self.process.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise AssertionError(f"{self.name}: the Node driver is gone; stderr:\n{''.join(self.stderr)}") from exc

    def call(self, cmd: str, timeout: float = DEFAULT_TIMEOUT, **args: Any) -> Any:
        """Run a driver command and return its result (raises AssertionError on a driver error)."""
        self._next_id += 1
        ident = self._next_id
        self._write({"id": ident, "cmd": cmd, **args})
        reply = self.wait_for(type="reply", id=ident, timeout=timeout)
        if not reply["ok"]:
            raise AssertionError(f"{self.name}: {cmd} failed in pusher-js: {reply['error']}")
        return reply["result"]

    # -- observation ----------------------------------------------------------------------------------
    def find(self, predicate: Callable[[Event], bool] | None = None, start: int = 0, **criteria: Any) -> list[Event]:
        with self._cond:
            return [e for e in self.events[start:] if matches(e, criteria, predicate)]

    def mark(self) -> int:
        """A cursor: pass it as ``start`` to only look at what arrives from now on."""
        with self._cond:
            return len(self.events)

    def wait_for(self, predicate: Callable[[Event], bool] | None = None, timeout: float = DEFAULT_TIMEOUT,
                 start: int = 0, **criteria: Any) -> Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events[start:]:
                    if matches(event, criteria, predicate):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            seen = "\n".join(json.dumps(e)[:400] for e in self.events[start:])
        raise AssertionError(f"{self.name}: no event matching {criteria} within {timeout}s; seen:\n{seen}")

    def wait_count(self, count: int, predicate: Callable[[Event], bool] | None = None,
                   timeout: float = DEFAULT_TIMEOUT, start: int = 0, **criteria: Any) -> list[Event]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [e for e in self.events[start:] if matches(e, criteria, predicate)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.name}: {len(found)} of {count} events matching {criteria} "
                                         f"within {timeout}s: {found}")
                self._cond.wait(left)

    # -- pusher-js API --------------------------------------------------------------------------------
    def connect(self, wait: bool = True, **options: Any) -> str | None:
        self.call("connect", key=self.app.key, host=self.server.host, port=self.server.port, options=options)
        if not wait:
            return None
        return str(self.wait_for(type="connected")["socket_id"])

    @property
    def socket_id(self) -> str:
        return str(self.wait_for(type="connected")["socket_id"])

    def subscribe(self, channel: str, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> Event | None:
        start = self.mark()
        self.call("subscribe", channel=channel)
        if not wait:
            return None
        return self.wait_for(type="event", channel=channel, event="pusher:subscription_succeeded",
                             start=start, timeout=timeout)

    def unsubscribe(self, channel: str) -> None:
        self.call("unsubscribe", channel=channel)

    def bind(self, channel: str, event: str) -> None:
        self.call("bind", channel=channel, event=event)

    def trigger(self, channel: str, event: str, data: Any) -> bool:
        """channel.trigger(): a client event; False when pusher-js could not send it."""
        return bool(self.call("trigger", channel=channel, event=event, data=data))

    def trigger_burst(self, channel: str, event: str, data: dict[str, Any], count: int) -> list[bool]:
        """``count`` client events in one synchronous loop (data gets an ``i`` index)."""
        return list(self.call("trigger", channel=channel, event=event, data=data, count=count))

    def signin(self) -> None:
        self.call("signin")

    def members(self, channel: str) -> dict[str, Any]:
        return dict(self.call("members", channel=channel))

    def state(self) -> dict[str, Any]:
        return dict(self.call("state"))

    def sync(self) -> None:
        """Barrier: everything this client sent before has been handled by the server."""
        self.call("sync")

    def disconnect(self) -> None:
        self.call("disconnect")

    def received(self, channel: str, event: str, start: int = 0) -> list[Any]:
        """The data of each ``event`` on ``channel`` that app code saw (channel.bind_global)."""
        return [e["data"] for e in self.find(type="event", channel=channel, event=event, start=start)]

    def frames(self, start: int = 0, **criteria: Any) -> list[Event]:
        """Decoded frames the server sent (connection 'message')."""
        return self.find(type="message", start=start, **criteria)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self._write({"cmd": "exit"})
                self.process.wait(timeout=3)
            except (AssertionError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


class JsHarness:
    """Makes pusher-js clients for one server and closes them all at the end of the test."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.clients: list[JsClient] = []

    def client(self, server: Any, app: Any = None, *, connect: bool = True, **kwargs: Any) -> JsClient:
        client = JsClient(self.node, server, app, name=kwargs.pop("name", f"js{len(self.clients) + 1}"), **kwargs)
        self.clients.append(client)
        if connect:
            client.connect()
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture(name="js")
def js_fixture(node_env: str) -> Iterator[JsHarness]:
    """Import ``js_fixture`` and ``node_env_fixture`` into a test module to use the ``js`` fixture."""
    harness = JsHarness(node_env)
    yield harness
    harness.close()


def wait_until(condition: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, what: str = "condition") -> Any:
    """Poll ``condition`` (e.g. an HTTP API query) until it is truthy; a wait, not an assertion by sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s (last value {value!r})")
        time.sleep(0.02)


def wait_subscription_count(server: Any, channel: str, count: int, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Wait until the server's HTTP API reports ``count`` subscriptions on a public ``channel``."""
    def current() -> bool:
        info = server.pusher().channel_info(channel, ["subscription_count"])
        return bool(info.get("subscription_count", 0) == count)
    wait_until(current, timeout, f"subscription_count={count} on {channel}")


def master_key_b64() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")
