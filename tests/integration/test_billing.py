"""Metering and quotas on the real server: pusher-http-python and raw WebSockets drive it, usage is read back
through the admin API and `vask usage --json`.

Every server here flushes usage every 0.1 s (``VASK_USAGE_FLUSH_INTERVAL``) so polling is quick.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import ModuleType
from typing import Any

import pusher
import pusher.errors
import pytest
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from vask.cli import cli as vask_main


def _shared_conftest() -> ModuleType:
    """tests/conftest.py, loaded by path: `import conftest` is ambiguous since tests/django has its own."""
    name = "vask_tests_shared_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
    return sys.modules[name]


_shared = _shared_conftest()
Credentials = _shared.TestApp  # renamed: pytest would try to collect a Test* class
VaskServer = _shared.VaskServer
start_server = _shared.start_server
vask_cli = _shared.vask_cli

TOKEN = "admin-test-token"
ADMIN_RE = re.compile(r"admin API listening on http://([^:\s]+):(\d+)")
FAST = {"VASK_ADMIN_TOKEN": TOKEN, "VASK_ADMIN_PORT": "0", "VASK_USAGE_FLUSH_INTERVAL": "0.1",
        "VASK_APP_CACHE_TTL": "1"}


# -- helpers -----------------------------------------------------------------------------------------


class Billed:
    """A running server, its apps (made with `--account`), and its admin API."""

    def __init__(self, server: VaskServer, apps: dict[str, Credentials]) -> None:
        self.server = server
        self.apps = apps
        found = next((ADMIN_RE.search(line) for line in server.output if ADMIN_RE.search(line)), None)
        assert found is not None, "".join(server.output)
        self.admin = f"http://{found.group(1)}:{found.group(2)}"

    def pusher(self, app_id: str) -> Any:
        return self.server.pusher(self.apps[app_id])

    def api(self, path: str) -> Any:
        request = urllib.request.Request(self.admin + path, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def metrics(self) -> dict[str, str]:
        """GET /metrics (Prometheus text): sample name -> value."""
        request = urllib.request.Request(self.admin + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            text = response.read().decode()
        return dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))

    def usage(self, account: str) -> Any:
        return self.api(f"/api/accounts/{account}/usage")

    def wait_usage(self, account: str, check: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            usage = self.usage(account)
            if check(usage) or time.monotonic() > deadline:
                return usage
            time.sleep(0.05)

    def settled(self, account: str, broadcasts: int, deliveries: int | None = None) -> Any:
        """Wait for the expected totals, then a few more flushes to be sure nothing else gets counted."""
        self.wait_usage(account, lambda u: u["broadcasts"] >= broadcasts)
        time.sleep(0.35)
        usage = self.usage(account)
        assert usage["broadcasts"] == broadcasts, usage
        if deliveries is not None:
            assert usage["deliveries"] == deliveries, usage
        return usage

    def client(self, app_id: str) -> Client:
        return Client(self.server, self.apps[app_id])


class Client:
    """A raw WebSocket client speaking the Pusher protocol."""

    def __init__(self, server: VaskServer, app: Credentials) -> None:
        self.app = app
        self.signer = pusher.Pusher(app_id=app.id, key=app.key, secret=app.secret)
        self._stack = ExitStack()  # websockets wants its sync connections entered as context managers
        self.ws: ClientConnection = self._stack.enter_context(
            connect(f"{server.ws_url}/app/{app.key}?protocol=7", open_timeout=5))
        self.first = self.next()
        self.socket_id = json.loads(self.first["data"])["socket_id"] if self.accepted else ""

    @property
    def accepted(self) -> bool:
        return bool(self.first["event"] == "pusher:connection_established")

    def next(self, timeout: float = 5.0) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=timeout))
        return message

    def expect(self, event: str, channel: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(deadline - time.monotonic(), 0.01))
            if message["event"] == event and (channel is None or message.get("channel") == channel):
                return message

    def send(self, event: str, data: Any, channel: str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": data}
        if channel is not None:
            frame["channel"] = channel
        self.ws.send(json.dumps(frame))

    def subscribe(self, channel: str, user_id: str | None = None) -> None:
        data: dict[str, Any] = {"channel": channel}
        if channel.startswith(("private-", "presence-")):
            custom = {"user_id": user_id, "user_info": {"name": user_id}} if user_id else None
            data.update(self.signer.authenticate(channel, self.socket_id, custom))
        self.send("pusher:subscribe", data)
        self.expect("pusher_internal:subscription_succeeded", channel)

    def sign_in(self, user_id: str) -> None:
        self.send("pusher:signin", self.signer.authenticate_user(self.socket_id, {"id": user_id}))
        self.expect("pusher:signin_success")

    def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; the close code it sent."""
        try:
            while True:
                self.next(timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None

    def close(self) -> None:
        self._stack.close()


def cli(data_dir: Path, *args: str) -> str:
    """The real CLI, in this process (a subprocess per set-up command would dominate the run time)."""
    result = CliRunner().invoke(vask_main, ["--data-dir", str(data_dir), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def error_code(message: dict[str, Any]) -> int | None:
    data = message["data"]
    return int(json.loads(data)["code"]) if isinstance(data, str) else int(data["code"])


@pytest.fixture
def billed(tmp_path: Path) -> Iterator[Callable[..., Billed]]:
    """Start a server after running CLI set-up (plans, accounts) and creating apps on accounts."""
    started: list[VaskServer] = []

    def make(setup: list[list[str]], apps: list[tuple[str, str]], env: dict[str, str] | None = None,
             data_dir: Path | None = None) -> Billed:
        data_dir = data_dir or tmp_path / f"data{len(started)}"
        data_dir.mkdir(parents=True, exist_ok=True)
        made: dict[str, Credentials] = {}
        for args in setup:
            cli(data_dir, *args)
        for app_id, account in apps:
            key, secret = f"key-{app_id}", f"secret-{app_id}"
            cli(data_dir, "apps", "create", "--id", app_id, "--key", key, "--secret", secret,
                "--account", account, "--client-events")
            made[app_id] = Credentials(app_id, key, secret)
        # Apps are made here (with --account), so the shared fixture creates none.
        server = start_server(data_dir, [], (), {**FAST, **(env or {})})
        started.append(server)
        return Billed(server, made)

    yield make
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def restart(old: Billed, env: dict[str, str] | None = None) -> Billed:
    server = start_server(old.server.data_dir, [], (), {**FAST, **(env or {})})
    return Billed(server, old.apps)


# -- exact counts --------------------------------------------------------------------------------------


def test_exact_counts_for_every_kind_of_publish(billed: Callable[..., Billed]) -> None:
    node = billed([["accounts", "create", "--id", "acme", "--plan", "pro"]], [("510510", "acme")])
    api = node.pusher("510510")
    c1, c2 = node.client("510510"), node.client("510510")
    try:
        # Subscriptions, presence joins and leaves, sign-in, pings and cache misses: none is a broadcast.
        for client in (c1, c2):
            client.subscribe("news")
            client.subscribe("private-chat")
        c1.subscribe("presence-room", "u1")
        c2.subscribe("presence-room", "u2")
        c1.expect("pusher_internal:member_added", "presence-room")
        c1.sign_in("u1")
        c1.subscribe("#server-to-user-u1")
        c2.subscribe("cache-prices")  # a cache miss
        c2.send("pusher:ping", {})
        c2.expect("pusher:pong")
        c2.send("pusher:unsubscribe", {"channel": "presence-room"})
        c1.expect("pusher_internal:member_removed", "presence-room")
        assert node.settled("acme", 0, 0)["broadcasts"] == 0

        api.trigger(["news", "empty-1", "empty-2"], "multi", {"n": 1})  # 3 channels: 3 broadcasts, 2 copies
        node.settled("acme", 3, 2)
        api.trigger_batch([{"channel": "news", "name": "batch", "data": json.dumps({"i": i})} for i in range(10)])
        node.settled("acme", 13, 22)
        c1.send("client-typing", {"who": "u1"}, "private-chat")  # one client event: 1 broadcast, 1 copy (c2)
        assert c2.expect("client-typing", "private-chat")["data"] == {"who": "u1"}
        node.settled("acme", 14, 23)
        api.send_to_user("u1", "direct", {"hello": True})  # sendToUser: one trigger to #server-to-user-u1
        c1.expect("direct")
        node.settled("acme", 15, 24)
        api.trigger("news", "not-to-c1", {}, socket_id=c1.socket_id)  # the excluded socket gets no copy
        c2.expect("not-to-c1")
        node.settled("acme", 16, 25)
        api.trigger("cache-prices", "price", {"p": 1})
        node.settled("acme", 17, 26)
        # Reads, a cache replay and terminating a user are not broadcasts either.
        api.channels_info()
        api.channel_info("news", ["subscription_count"])
        api.users_info("presence-room")
        c3 = node.client("510510")
        c3.subscribe("cache-prices")
        c3.expect("price", "cache-prices")  # replayed from the cache
        api.terminate_user_connections("u1")
        assert c1.close_code() == 4009
        c3.close()
        usage = node.settled("acme", 17, 26)
    finally:
        c1.close()
        c2.close()
    assert [(a["app"], a["broadcasts"], a["deliveries"]) for a in usage["apps"]] == [("510510", 17, 26)]
    assert usage["fanout"]["per_message_messages"] == 43  # what a per-copy provider would have counted
    assert usage["peak_connections"] == 3
    # The CLI reads the same ledger.
    report = json.loads(node.server.cli("usage", "--json", "--app", "510510", "--fanout"))
    (acme,) = report["accounts"]
    assert (acme["account"], acme["broadcasts"], acme["deliveries"]) == ("acme", 17, 26)


# -- quotas ----------------------------------------------------------------------------------------------


def test_broadcast_quota_refuses_at_the_exact_boundary(billed: Callable[..., Billed]) -> None:
    node = billed([["plans", "set", "five", "--create", "--broadcasts", "5"],
                   ["accounts", "create", "--id", "small", "--plan", "five"]],
                  [("520520", "small")])
    api = node.pusher("520520")
    sender, listener = node.client("520520"), node.client("520520")
    try:
        sender.subscribe("private-q")
        listener.subscribe("private-q")
        for _ in range(3):
            api.trigger("a", "e", {})
        # 3 + 3 > 5: a request is accepted whole or refused whole
        with pytest.raises(pusher.errors.PusherForbidden, match=r"Over message quota.*5 broadcasts"):
            api.trigger(["a", "b", "c"], "e", {})
        api.trigger(["a", "b"], "e", {})  # exactly 5
        with pytest.raises(pusher.errors.PusherForbidden, match="5 broadcasts"):
            api.trigger("a", "e", {})
        with pytest.raises(pusher.errors.PusherForbidden):
            api.trigger_batch([{"channel": "a", "name": "e", "data": "{}"}])
        with pytest.raises(pusher.errors.PusherForbidden):
            api.send_to_user("u1", "e", {})
        sender.send("client-over", {"x": 1}, "private-q")
        refused = sender.expect("pusher:error")
        assert error_code(refused) == 4301 and "quota" in json.dumps(refused)
        api.channels_info()  # reads are never refused
        usage = node.settled("small", 5)
        assert usage["warnings"] == {"broadcasts": 100, "connections": None}
        with pytest.raises(TimeoutError):
            listener.expect("client-over", timeout=0.3)
    finally:
        sender.close()
        listener.close()
    assert node.api("/api/meter")["refused_requests"] == 5
    assert node.metrics()["vask_quota_refused_requests_total"] == "5"


def test_connection_limit_is_summed_across_the_accounts_apps(billed: Callable[..., Billed]) -> None:
    node = billed([["plans", "set", "three", "--create", "--connections", "3"],
                   ["accounts", "create", "--id", "team", "--plan", "three"]],
                  [("530530", "team"), ("540540", "team"), ("550550", "default")])
    accepted = [node.client("530530"), node.client("530530"), node.client("540540")]
    try:
        assert all(c.accepted for c in accepted)
        for app_id in ("540540", "530530"):
            refused = node.client(app_id)
            assert refused.first["event"] == "pusher:error" and error_code(refused.first) == 4004
            assert refused.close_code() == 4004
        other = node.client("550550")  # another account is not affected
        assert other.accepted
        other.close()
        accepted.pop(0).close()
        for _ in range(50):  # the slot frees when the server sees the close
            again = node.client("540540")
            if again.accepted:
                break
            again.close_code()
            time.sleep(0.05)
        assert again.accepted
        accepted.append(again)
        assert not node.client("530530").accepted
        usage = node.wait_usage("team", lambda u: u["peak_connections"] == 3)
        assert usage["peak_connections"] == 3 and usage["connection_limit"] == 3
        assert usage["warnings"]["connections"] == 100
    finally:
        for client in accepted:
            client.close()


# -- durability ------------------------------------------------------------------------------------------


def test_restart_keeps_usage_and_sigterm_writes_the_last_of_it(billed: Callable[..., Billed]) -> None:
    # A flush interval far longer than the test: only the graceful shutdown can have written the usage.
    node = billed([["plans", "set", "ten", "--create", "--broadcasts", "10"],
                   ["accounts", "create", "--id", "acme", "--plan", "ten"]],
                  [("560560", "acme")], env={"VASK_USAGE_FLUSH_INTERVAL": "600"})
    api = node.pusher("560560")
    for _ in range(7):
        api.trigger("ch", "e", {})
    assert node.usage("acme")["broadcasts"] == 0  # not written yet
    assert node.server.stop(signal.SIGTERM) == 0
    report = json.loads(vask_cli(node.server.data_dir, "usage", "--json", "--account", "acme"))
    assert report["accounts"][0]["broadcasts"] == 7

    again = restart(node)
    api = again.pusher("560560")
    for _ in range(3):
        api.trigger("ch", "e", {})
    with pytest.raises(pusher.errors.PusherForbidden, match="10 broadcasts"):
        api.trigger("ch", "e", {})  # the quota remembers the 7 from before the restart
    assert again.settled("acme", 10)["broadcasts"] == 10
    statement = again.api("/api/accounts/acme/statement")
    assert (statement["used_broadcasts"], statement["plan"], statement["total_cents"]) == (10, "ten", 0)
    again.server.stop()


def test_a_crash_loses_at_most_the_last_flush_interval(billed: Callable[..., Billed]) -> None:
    interval = 0.5
    node = billed([["accounts", "create", "--id", "acme", "--plan", "pro"]], [("570570", "acme")],
                  env={"VASK_USAGE_FLUSH_INTERVAL": str(interval)})
    api = node.pusher("570570")
    for _ in range(4):
        api.trigger("ch", "e", {})
    published = time.monotonic()
    node.wait_usage("acme", lambda u: u["broadcasts"] == 4)
    assert time.monotonic() - published < 2 * interval + 1.0  # written within a flush interval (plus slack)
    for _ in range(3):
        api.trigger("ch", "e", {})
    node.server.process.kill()  # kill -9, right after the publishes: they may not be written yet
    node.server.process.wait()
    lost_some = json.loads(vask_cli(node.server.data_dir, "usage", "--json", "--account", "acme"))
    first = lost_some["accounts"][0]["broadcasts"]
    assert 4 <= first <= 7  # what was written before the last interval survives

    again = restart(node, {"VASK_USAGE_FLUSH_INTERVAL": str(interval)})
    api = again.pusher("570570")
    for _ in range(2):
        api.trigger("ch", "e", {})
    time.sleep(2 * interval + 0.5)  # older than one flush interval when the process dies
    again.server.process.kill()
    again.server.process.wait()
    report = json.loads(vask_cli(node.server.data_dir, "usage", "--json", "--account", "acme"))
    assert report["accounts"][0]["broadcasts"] == first + 2


# -- admin API -------------------------------------------------------------------------------------------


def test_admin_api_needs_the_token_and_is_off_by_default(billed: Callable[..., Billed],
                                                          server_factory: Any) -> None:
    node = billed([], [("580580", "default")])
    request = urllib.request.Request(node.admin + "/api/accounts/default/usage")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 401
    assert node.api("/api/accounts/default/statement")["plan"] == "unlimited"
    plain = server_factory()  # no admin token: no admin API
    assert not any("admin API" in line for line in plain.output)
