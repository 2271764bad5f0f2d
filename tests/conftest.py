"""Shared fixtures: start the real `vask serve` process on port 0 with apps created through the real CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# Property tests check behaviour, not speed: on a loaded CI machine hypothesis' 200 ms deadline per example
# and its too-slow check fail at random (tests/unit/test_envelopes.py did), so neither applies here.
settings.register_profile("vask", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("vask")

LISTEN_RE = re.compile(r"listening on (wss?)://([^:\s]+):(\d+)")


@dataclass
class TestApp:
    id: str
    key: str
    secret: str


@dataclass
class VaskServer:
    host: str
    port: int
    scheme: str
    data_dir: Path
    process: subprocess.Popen[str]
    apps: dict[str, TestApp] = field(default_factory=dict)
    output: list[str] = field(default_factory=list)

    @property
    def app(self) -> TestApp:
        return next(iter(self.apps.values()))

    @property
    def ws_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        return f"{'https' if self.scheme == 'wss' else 'http'}://{self.host}:{self.port}"

    def pusher(self, app: TestApp | None = None, **kwargs: Any) -> Any:
        """A pusher-http-python client pointed at this server."""
        import pusher

        app = app or self.app
        return pusher.Pusher(app_id=app.id, key=app.key, secret=app.secret, host=self.host,
                             port=self.port, ssl=self.scheme == "wss", **kwargs)

    def cli(self, *args: str) -> str:
        return vask_cli(self.data_dir, *args)

    def stop(self, sig: int | None = None) -> int:
        if self.process.poll() is None:
            if sig is None:
                self.process.terminate()
            else:
                self.process.send_signal(sig)
        return self.process.wait(timeout=30)


def vask_cli(data_dir: Path, *args: str) -> str:
    env = {**os.environ, "VASK_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-m", "vask", *args], capture_output=True, text=True,
                          env=env, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"vask {' '.join(args)} failed: {done.stdout}\n{done.stderr}")
    return done.stdout


def create_apps(data_dir: Path, apps: list[dict[str, Any]]) -> dict[str, TestApp]:
    """Create ``apps`` (dicts of CLI flags: id, key, secret, plus any `--set` settings) with the real CLI."""
    data_dir.mkdir(parents=True, exist_ok=True)
    made: dict[str, TestApp] = {}
    for spec in apps:
        spec = dict(spec)
        app_id, key, secret = spec.pop("id"), spec.pop("key"), spec.pop("secret")
        args = ["apps", "create", "--id", app_id, "--key", key, "--secret", secret, "--json"]
        for name, value in spec.items():
            if isinstance(value, bool):
                value = "true" if value else "false"
            args += ["--set", f"{name}={value}"]
        json.loads(vask_cli(data_dir, *args))
        made[app_id] = TestApp(app_id, key, secret)
    return made


def start_server(data_dir: Path, apps: list[dict[str, Any]], extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None, *, create: bool = True, listeners: int = 1) -> VaskServer:
    """Create ``apps`` (unless ``create`` is False: they already are in ``data_dir``) then start the server.

    Returns once ``listeners`` processes said they listen (``--workers N`` prints it once per worker).
    """
    if create:
        made = create_apps(data_dir, apps)
    else:
        made = {spec["id"]: TestApp(spec["id"], spec["key"], spec["secret"]) for spec in apps}
    proc_env = {**os.environ, "VASK_DATA_DIR": str(data_dir), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "vask", "serve", "--port", "0", "--no-default-app", *extra_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=proc_env)
    output: list[str] = []
    assert process.stdout is not None
    match = None
    for line in process.stdout:
        output.append(line)
        found = LISTEN_RE.search(line)
        if found:
            match = found
            listeners -= 1
            if listeners <= 0:
                break
    else:
        raise RuntimeError("vask serve exited before listening:\n" + "".join(output))
    assert match is not None
    server = VaskServer(match.group(2), int(match.group(3)), match.group(1), data_dir, process, made, output)
    # Keep draining the output so the server never blocks on a full pipe.
    stream = process.stdout
    threading.Thread(target=lambda: output.extend(stream), daemon=True).start()
    return server


DEFAULT_APP = {"id": "424242", "key": "test-key", "secret": "test-secret",
               "client_events": True, "subscription_count_events": True}


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[VaskServer] = []

    def make(apps: list[dict[str, Any]] | None = None, *extra_args: str,
             env: dict[str, str] | None = None) -> VaskServer:
        server = start_server(tmp_path / f"data{len(started)}", apps or [DEFAULT_APP], extra_args, env)
        started.append(server)
        return server

    yield make
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def server(server_factory: Any) -> VaskServer:
    """A running server with one app (client events and subscription_count enabled)."""
    return server_factory()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL (redis+cluster://) of a private 3-master Redis Cluster, shared by the session's tests, each of
    which uses a prefix of its own. Skips with the reason when redis-server or redis-cli is missing."""
    from private_redis_cluster import PrivateRedisCluster, problem

    reason = problem()
    if reason:
        pytest.skip(reason)
    cluster = PrivateRedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(params=["redis", "nats"])
def shared_engine(request: pytest.FixtureRequest) -> str:
    """The URL of the machine's Redis, then of its NATS, for in-process cluster tests (skipped when away)."""
    from private_nats import NATS_URL, REDIS_URL, reachable

    if request.param == "redis":
        if not reachable("127.0.0.1", 6379):
            pytest.skip("Redis is not reachable on 127.0.0.1:6379")
        return REDIS_URL
    if not reachable("127.0.0.1", 4222):
        pytest.skip("NATS is not reachable on 127.0.0.1:4222")
    return NATS_URL


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Any:
    """A failed test's report carries the last lines each of its server processes printed, so that a failure
    seen only in CI (a node that refused with 503, say) says what the node logged."""
    report = yield
    if report.when == "call" and report.failed:
        for value in getattr(item, "funcargs", {}).values():
            nodes = value if isinstance(value, list) else [value]
            for node in nodes:
                if isinstance(node, VaskServer):
                    report.sections.append((f"vask node on port {node.port}", "".join(node.output[-40:])))
    return report
