"""`vask serve` as deployments run it: declared apps, the banner, honest /ready, /accept-traffic, metrics."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pusher
import pytest
import requests
from raw_helpers import connect_raw
from tcp_proxy import TcpProxy

from conftest import LISTEN_RE, VaskServer, start_server, vask_cli

TOML = """
[[apps]]
id = "4711"
key = "shop-key"
secret = "shop-secret"
name = "shop"
[apps.settings]
client_events = true
"""


def _serve(tmp_path: Path, config: str, env: dict[str, str] | None = None) -> VaskServer:
    """`vask serve` with ``config`` as its TOML file (given as VASK_CONFIG, as a container would)."""
    path = tmp_path / "vask.toml"
    path.write_text(config)
    return start_server(tmp_path / "data", [], (), {**(env or {}), "VASK_CONFIG": str(path)}, create=False)


def _lines(server: VaskServer) -> str:
    return "".join(server.output)


def test_declared_apps_are_created_updated_and_never_lose_a_cli_secret(tmp_path: Path) -> None:
    env = {"VASK_DEFAULT_APP_ID": "4712", "VASK_DEFAULT_APP_KEY": "env-key", "VASK_DEFAULT_APP_SECRET": "env-secret"}
    server = _serve(tmp_path, TOML, env)
    try:
        assert "Declared apps: created 4711, 4712" in _lines(server), _lines(server)
        client = connect_raw(server, "shop-key")
        client.subscribe("orders")
        shop = pusher.Pusher(app_id="4711", key="shop-key", secret="shop-secret", host=server.host,
                             port=server.port, ssl=False)
        assert shop.trigger("orders", "placed", {"n": 1}) == {}
        assert client.expect("placed")["channel"] == "orders"
        env_app = pusher.Pusher(app_id="4712", key="env-key", secret="env-secret", host=server.host,
                                port=server.port, ssl=False)
        assert env_app.channels_info() == {"channels": {}}
    finally:
        server.stop()
    # The operator rotates the secret with the CLI; the next start keeps it and says so.
    rotated = json.loads(vask_cli(tmp_path / "data", "apps", "rotate-secret", "4711", "--json"))["secret"]
    server = _serve(tmp_path, TOML, env)
    try:
        text = _lines(server)
        assert "Declared apps: unchanged 4711, 4712" in text, text
        assert "declared app 4711: the stored secret differs" in text and "overwrite_secret" in text
        assert rotated not in text and "shop-secret" not in text  # no secret in the logs
        kept = pusher.Pusher(app_id="4711", key="shop-key", secret=rotated, host=server.host, port=server.port,
                             ssl=False)
        assert kept.channels_info() == {"channels": {}}
    finally:
        server.stop()
    # Told to, the configuration's secret wins; a changed setting is applied.
    server = _serve(tmp_path, TOML.replace('name = "shop"', 'name = "shop"\noverwrite_secret = true')
                    .replace("client_events = true", "client_events = false"), env)
    try:
        assert "Declared apps: updated 4711; unchanged 4712" in _lines(server), _lines(server)
        shown = json.loads(vask_cli(tmp_path / "data", "apps", "show", "4711", "--json", "--show-secret"))
        assert shown["secret"] == "shop-secret" and shown["settings"]["client_events"] is False
    finally:
        server.stop()


def test_a_bad_declared_app_names_the_setting_and_line(tmp_path: Path) -> None:
    path = tmp_path / "vask.toml"
    path.write_text(TOML.replace('key = "shop-key"', 'key = "shop key"'))
    done = subprocess.run([sys.executable, "-m", "vask", "--config", str(path), "serve", "--port", "0"],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "VASK_DATA_DIR": str(tmp_path / "d")})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"apps[0].key ({path}:4)" in done.stderr, done.stderr
    done = subprocess.run([sys.executable, "-m", "vask", "serve", "--port", "0"], capture_output=True, text=True,
                          timeout=30, env={**os.environ, "VASK_DATA_DIR": str(tmp_path / "d"),
                                           "VASK_DEFAULT_APP_ID": "1"})
    assert done.returncode == 1 and "default_app_id, default_app_key and default_app_secret" in done.stderr


def test_development_app_works_with_pusher_http_python_and_the_banner_snippets(tmp_path: Path) -> None:
    env = {**os.environ, "VASK_DATA_DIR": str(tmp_path / "dev")}
    process = subprocess.Popen([sys.executable, "-m", "vask", "serve", "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if LISTEN_RE.search(line):
                break
        text = "".join(lines)
        port = int(LISTEN_RE.search(text).group(3))  # type: ignore[union-attr]
        assert f"App store: SQLite at {tmp_path / 'dev' / 'vask.db'}" in text
        # The printed pusher-http-python snippet runs as printed.
        snippet = [line.strip() for line in lines if "pusher.Pusher(" in line or "host=" in line]
        code = "import pusher\nclient = " + " ".join(snippet).split("client = ", 1)[1]
        code += "\nresult = client.trigger('c', 'e', {})"
        namespace: dict[str, Any] = {}
        exec(code, namespace)
        assert namespace["result"] == {}
        assert namespace["client"]._pusher_client.app_id == "100000"
        assert f"wsPort: {port}" in text and "new Pusher(\"app-key\"" in text
    finally:
        process.terminate()
        process.wait(timeout=15)


def _postgres_and_redis() -> None:
    for port in (5432, 6379):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            pytest.skip(f"needs PostgreSQL (5432) and Redis (6379) on 127.0.0.1; {port} does not answer")


def _ready(server: VaskServer) -> tuple[int, str]:
    response = requests.get(f"{server.http_url}/ready", timeout=5)
    return response.status_code, response.text


def _wait_ready(server: VaskServer, status: int, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    seen = (0, "")
    while time.monotonic() < deadline:
        seen = _ready(server)
        if seen[0] == status:
            return seen[1]
        time.sleep(0.2)
    raise AssertionError(f"/ready stayed {seen} instead of {status}")


def test_ready_is_503_while_the_store_or_the_broker_is_unreachable(tmp_path: Path) -> None:
    _postgres_and_redis()
    database, broker = TcpProxy(("127.0.0.1", 5432)), TcpProxy(("127.0.0.1", 6379))
    server = start_server(tmp_path / "d", [], (), {
        "VASK_DATABASE_URL": f"postgresql://127.0.0.1:{database.port}/test",
        "VASK_BROKER": f"redis://127.0.0.1:{broker.port}/0", "VASK_BROKER_PREFIX": f"ready{os.getpid()}",
        "VASK_STORE_CHECK_INTERVAL": "0.3"}, create=False)
    try:
        assert _ready(server) == (200, "OK")
        database.cut()
        assert "App store unreachable" in _wait_ready(server, 503)
        assert requests.get(f"{server.http_url}/live", timeout=5).status_code == 200  # alive, not ready
        database.restore()
        _wait_ready(server, 200, timeout=30)
        broker.cut()
        assert "Broker unavailable" in _wait_ready(server, 503, timeout=30)
        assert requests.get(f"{server.http_url}/live", timeout=5).status_code == 200
        broker.restore()
        _wait_ready(server, 200, timeout=30)
    finally:
        server.stop()
        database.close()
        broker.close()


def test_metrics_without_token_usage_and_accept_traffic(server_factory: Any) -> None:
    server = server_factory([{"id": "515", "key": "m-key", "secret": "m-secret"}],
                            env={"VASK_METRICS_REQUIRE_TOKEN": "false", "VASK_ADMIN_PORT": "0"})
    deadline = time.monotonic() + 5
    admin = None
    while admin is None and time.monotonic() < deadline:
        admin = re.search(r"admin API listening on (http://\S+?:\d+)/api/", _lines(server))
        time.sleep(0.05)
    assert admin is not None, _lines(server)
    base = admin.group(1)
    client = connect_raw(server, "m-key")
    client.subscribe("news")
    assert server.pusher().trigger("news", "hello", {"a": 1}) == {}
    client.expect("hello")
    metrics = requests.get(f"{base}/metrics", timeout=5)
    assert metrics.status_code == 200
    text = metrics.text
    assert 'vask_connected{app_id="515"} 1' in text
    assert 'vask_new_connections_total{app_id="515"} 1' in text
    sent = int(re.search(r'vask_ws_messages_sent_total\{app_id="515"\} (\d+)', text).group(1))  # type: ignore[union-attr]
    assert sent >= 3  # connection_established, subscription_succeeded, hello
    assert 'vask_http_calls_received_total{app_id="515"} 1' in text
    assert 'vask_http_request_duration_seconds_count{app_id="515",route="events"} 1' in text
    assert re.search(r'vask_socket_received_bytes\{app_id="515"\} [1-9]', text)
    client.close()
    deadline = time.monotonic() + 5
    while 'vask_new_disconnections_total{app_id="515"} 1' not in text and time.monotonic() < deadline:
        time.sleep(0.1)
        text = requests.get(f"{base}/metrics", timeout=5).text
    assert 'vask_new_disconnections_total{app_id="515"} 1' in text and 'vask_connected{app_id="515"}' not in text
    # The rest of the admin API stays closed without a token.
    assert requests.get(f"{base}/api/accounts", timeout=5).status_code == 403
    memory = requests.get(f"{base}/usage", timeout=5).json()["memory"]
    assert 0 < memory["used"] < memory["total"] and 0 < memory["percent"] < 100
    assert requests.get(f"{server.http_url}/usage", timeout=5).json()["memory"]["used"] > 0
    assert requests.get(f"{server.http_url}/accept-traffic", timeout=5).text == "OK"


def test_accept_traffic_refuses_above_the_memory_threshold(server_factory: Any) -> None:
    server = server_factory(env={"VASK_ACCEPT_TRAFFIC_MEMORY_THRESHOLD": "0.0001"})
    response = requests.get(f"{server.http_url}/accept-traffic", timeout=5)
    assert response.status_code == 503 and "Low on memory" in response.text
    assert _ready(server) == (200, "OK")  # readiness is not about memory


def test_container_healthcheck_follows_ready(server_factory: Any) -> None:
    """`python -m vask.healthcheck` (the image's HEALTHCHECK) exits 0 only while /ready is 200."""
    server = server_factory()
    env = {**os.environ, "VASK_PORT": str(server.port)}
    check = [sys.executable, "-m", "vask.healthcheck"]
    assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0
    server.stop()
    done = subprocess.run(check, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "not ready" in done.stderr
