"""Security properties of issue 14 (RELIABILITY.md, "Security"), on the real server where a server is involved.

- every signature and token comparison goes through ``hmac.compare_digest`` (spied on the code path, and no
  ``==`` on a signature, token or digest anywhere in the modules that check them);
- the HTTP API's timestamp window is ±600 s, on both sides;
- a channel or sign-in authorization made for one socket is refused on another;
- app B's credentials never read or write app A's data;
- webhooks never reach loopback, link-local (cloud metadata), private or IPv4-mapped addresses, nor a name
  resolving to loopback: a local listener is never hit, while the same listener is hit once private
  addresses are allowed (so the listener would have seen a request);
- the admin API refuses a missing or wrong token;
- the HTTP API sends no CORS headers unless ``cors_origins`` is set.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import hmac
import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from raw_helpers import connect_raw, data_of, hmac_hex, signed, trigger_body
from webhook_helpers import Receiver

from conftest import VaskServer, start_server

SRC = Path(__file__).resolve().parents[2] / "src" / "vask"
TOKEN = "security-admin-token"
ADMIN_RE = re.compile(r"admin API listening on http://([^:\s]+):(\d+)")
APP_A = {"id": "111111", "key": "key-a", "secret": "secret-a", "client_events": True}
APP_B = {"id": "222222", "key": "key-b", "secret": "secret-b", "client_events": True}
FAST = {"VASK_APP_CACHE_TTL": "0.1", "VASK_ADMIN_TOKEN": TOKEN, "VASK_ADMIN_PORT": "0",
        "VASK_WEBHOOK_RETRY_BASE": "0.05", "VASK_WEBHOOK_RETRY_MAX_DELAY": "0.2", "VASK_WEBHOOK_TIMEOUT": "1",
        "VASK_WEBHOOK_SHUTDOWN_GRACE": "0.5", "VASK_SHUTDOWN_GRACE": "1"}


def _stop(server: VaskServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except Exception:
            server.process.kill()
            server.process.wait()


@pytest.fixture(scope="module")
def two_apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaskServer]:
    """One server, apps A and B, the admin API on, default settings otherwise (private webhooks refused,
    no CORS)."""
    server = start_server(tmp_path_factory.mktemp("security"), [APP_A, APP_B], env=FAST)
    yield server
    _stop(server)


def admin_url(server: VaskServer) -> str:
    found = next((m for m in map(ADMIN_RE.search, list(server.output)) if m), None)
    assert found is not None, "".join(server.output)
    return f"http://{found.group(1)}:{found.group(2)}"


def admin_get(server: VaskServer, path: str, authorization: str | None = f"Bearer {TOKEN}") -> tuple[int, Any]:
    headers = {"Authorization": authorization} if authorization is not None else {}
    request = urllib.request.Request(admin_url(server) + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, (exc.read(), exc.headers.get("WWW-Authenticate"))


# -- constant-time comparisons ------------------------------------------------------------------


def test_signature_checks_call_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiohttp.test_utils import make_mocked_request

    from vask.admin.api import _auth
    from vask.apps.base import App
    from vask.protocol.auth import check_auth, sign
    from vask.protocol.rest_auth import RestAuthError, sign_request, verify_request

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)

    # channel authorization: the given signature is compared with the expected one by compare_digest
    expected = sign("s3cret", "1.2:private-x")
    assert check_auth("k", "s3cret", "1.2:private-x", f"k:{'0' * 64}") is not None
    assert (b"0" * 64, expected.encode()) in compared
    compared.clear()
    assert check_auth("k", "s3cret", "1.2:private-x", f"k:{expected}") is None
    assert (expected.encode(), expected.encode()) in compared

    # HTTP API signature and body_md5
    app = App(id="1", key="k", secret="s3cret")
    now = time.time()
    params = [("auth_key", "k"), ("auth_timestamp", str(int(now))), ("auth_version", "1.0"),
              ("body_md5", hashlib.md5(b"{}").hexdigest())]
    good = sign_request("s3cret", "POST", "/apps/1/events", params)
    query = "&".join(f"{k}={v}" for k, v in params)
    compared.clear()
    verify_request("POST", "/apps/1/events", f"{query}&auth_signature={good}", b"{}", now, {"k": app}.get, "1")
    assert (good.encode(), good.encode()) in compared
    assert (hashlib.md5(b"{}").hexdigest().encode(),) * 2 in compared
    compared.clear()
    with pytest.raises(RestAuthError):
        verify_request("POST", "/apps/1/events", f"{query}&auth_signature={'f' * 64}", b"{}", now,
                       {"k": app}.get, "1")
    assert (good.encode(), b"f" * 64) in compared

    # admin API bearer token
    check = _auth("tok")

    async def handler(request: Any) -> Any:
        from aiohttp import web

        return web.Response(text="ok")

    compared.clear()
    response = asyncio.run(check(make_mocked_request("GET", "/api/plans", headers={"Authorization": "Bearer x"}),
                                 handler))
    assert response.status == 401
    assert (b"Bearer x", b"Bearer tok") in compared


SENSITIVE = re.compile(r"sig|token|secret|digest|md5|auth", re.IGNORECASE)
CHECKING_MODULES = ["protocol/auth.py", "protocol/rest_auth.py", "admin/api.py", "contrib/django/webhooks.py",
                    "webhooks/events.py"]


def _public_constant(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name.isupper()


def _names(node: ast.AST) -> list[str]:
    return [n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
            if isinstance(n, ast.Name | ast.Attribute)]


@pytest.mark.parametrize("module", CHECKING_MODULES)
def test_no_equality_comparison_on_secrets(module: str) -> None:
    """``==`` on a signature or token would leak, through timing, how many leading characters were right."""
    tree = ast.parse((SRC / module).read_text())
    suspicious = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            operands = [node.left, *node.comparators]
            # Against a public constant (None, a parameter name such as AUTH_SIGNATURE, the MD5 of the empty
            # body) nothing secret can leak.
            if any(isinstance(o, ast.Constant) or _public_constant(o) for o in operands):
                continue
            names = [name for o in operands for name in _names(o)]
            if any(SENSITIVE.search(name) for name in names):
                suspicious.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    assert suspicious == []


# -- HTTP API timestamp window ------------------------------------------------------------------


def test_timestamp_window_is_600_seconds_either_way(two_apps: VaskServer) -> None:
    path = f"/apps/{APP_A['id']}/events"
    for skew in (-595, 595):
        response = signed(two_apps, "POST", path, trigger_body(["t"]), key="key-a", secret="secret-a",
                          timestamp=time.time() + skew)
        assert response.status_code == 200, (skew, response.text)
    for skew in (-605, 605):
        response = signed(two_apps, "POST", path, trigger_body(["t"]), key="key-a", secret="secret-a",
                          timestamp=time.time() + skew)
        assert response.status_code == 401 and "Timestamp expired" in response.text, (skew, response.text)


# -- authorizations replayed on another socket --------------------------------------------------


def _refused_subscription(client: Any, channel: str) -> None:
    """Pusher's answer to a bad channel authorization: pusher:error with code null and
    pusher:subscription_error (status 401) for the channel; the connection is kept."""
    error = data_of(client.expect("pusher:error"))
    assert error["code"] is None and "Invalid signature" in error["message"], error
    assert data_of(client.expect("pusher:subscription_error", channel))["status"] == 401


def test_authorization_for_one_socket_is_refused_on_another(two_apps: VaskServer) -> None:
    key, secret = APP_A["key"], APP_A["secret"]
    owner = connect_raw(two_apps, key)
    thief = connect_raw(two_apps, key)
    # a private channel's auth
    thief.subscribe("private-vault", f"{key}:{hmac_hex(secret, f'{owner.socket_id}:private-vault')}", expect=False)
    _refused_subscription(thief, "private-vault")
    # a presence channel's auth, with its channel_data unchanged and with the user swapped
    channel_data = json.dumps({"user_id": "owner", "user_info": {}})
    sig = hmac_hex(secret, f"{owner.socket_id}:presence-room:{channel_data}")
    thief.subscribe("presence-room", f"{key}:{sig}", channel_data, expect=False)
    _refused_subscription(thief, "presence-room")
    owner.subscribe("presence-room", f"{key}:{sig}", json.dumps({"user_id": "thief", "user_info": {}}),
                    expect=False)
    _refused_subscription(owner, "presence-room")
    # the owner's authorization made with another app's key and secret is refused too
    owner.subscribe("private-b", f"{APP_B['key']}:{hmac_hex(APP_B['secret'], f'{owner.socket_id}:private-b')}",
                    expect=False)
    _refused_subscription(owner, "private-b")
    # the thief was subscribed to nothing: a publish to those channels reaches only the rightful owner
    owner.subscribe_private("private-vault", key, secret)
    assert signed(two_apps, "POST", f"/apps/{APP_A['id']}/events",
                  trigger_body(["private-vault", "presence-room"], "secret"), key=key, secret=secret).status_code == 200
    owner.expect("secret", "private-vault")
    thief.nothing(0.3)
    # a user sign-in made for the owner's socket: 4009 and the thief's connection is closed
    user_data = json.dumps({"id": "owner"})
    thief.send("pusher:signin", {"auth": f"{key}:{hmac_hex(secret, f'{owner.socket_id}::user::{user_data}')}",
                                 "user_data": user_data})
    code, frames = thief.closed()
    assert code == 4009, (code, frames)
    assert not any(f.get("event") == "pusher:signin_success" for f in frames), frames
    owner.signin(key, secret, "owner")  # ...while the same sign-in on its own socket succeeds
    owner.close()


# -- one app's credentials and another app's data -----------------------------------------------


def test_app_b_credentials_never_reach_app_a(two_apps: VaskServer) -> None:
    a_id, b_id = APP_A["id"], APP_B["id"]
    on_a = connect_raw(two_apps, APP_A["key"])
    on_a.subscribe("shared-name")
    on_a.subscribe_presence("presence-a-only", APP_A["key"], APP_A["secret"], "alice")
    on_b = connect_raw(two_apps, APP_B["key"])
    on_b.subscribe("shared-name")
    b = {"key": APP_B["key"], "secret": APP_B["secret"]}

    # writes and reads on app A's paths, signed with B's key and secret, are refused without data
    body = trigger_body(["shared-name"], "from-b")
    for method, path, payload in (
            ("POST", f"/apps/{a_id}/events", body),
            ("POST", f"/apps/{a_id}/batch_events", json.dumps({"batch": [{"channel": "shared-name",
                                                                         "name": "from-b", "data": "{}"}]})),
            ("GET", f"/apps/{a_id}/channels", None),
            ("GET", f"/apps/{a_id}/channels/presence-a-only", None),
            ("GET", f"/apps/{a_id}/channels/presence-a-only/users", None),
            ("POST", f"/apps/{a_id}/users/alice/terminate_connections", "{}")):
        response = signed(two_apps, method, path, payload, **b)
        assert response.status_code in (401, 403), (path, response.status_code, response.text)
        assert "presence-a-only" not in response.text and "alice" not in response.text, response.text
    # B's key with A's secret (or the reverse) is just a wrong signature
    assert signed(two_apps, "GET", f"/apps/{b_id}/channels", key=APP_B["key"],
                  secret=APP_A["secret"]).status_code == 401
    # B's own API sees only B's channels; its publish reaches only B's subscribers of the same name
    own = signed(two_apps, "GET", f"/apps/{b_id}/channels", **b)
    assert own.status_code == 200 and own.json() == {"channels": {"shared-name": {}}}, own.text
    assert signed(two_apps, "POST", f"/apps/{b_id}/events", body, **b).status_code == 200
    on_b.expect("from-b", "shared-name")
    on_a.nothing(0.3)
    # a connection to app B cannot join A's channels with A's authorization either
    auth = f"{APP_A['key']}:{hmac_hex(APP_A['secret'], f'{on_b.socket_id}:private-a')}"
    on_b.subscribe("private-a", auth, expect=False)
    _refused_subscription(on_b, "private-a")
    on_a.ping()  # A's connection was never touched
    on_a.close()
    on_b.close()


# -- webhook SSRF guard -------------------------------------------------------------------------


def add_webhook(server: VaskServer, app_id: str, *args: str) -> None:
    """`vask apps webhooks add`, run in this process (a subprocess per target costs a second each)."""
    from click.testing import CliRunner

    from vask.cli import cli

    done = CliRunner().invoke(cli, ["apps", "webhooks", "add", app_id, *args],
                              env={"VASK_DATA_DIR": str(server.data_dir)})
    assert done.exit_code == 0, done.output


def _webhook_stats(server: VaskServer) -> dict[str, int]:
    status, body = admin_get(server, "/api/webhooks")
    assert status == 200
    return json.loads(body)  # type: ignore[no-any-return]


def test_webhooks_never_reach_private_addresses(tmp_path: Path) -> None:
    receiver = Receiver()
    port = receiver.port
    blocked = [f"http://127.0.0.1:{port}/a", f"http://169.254.169.254:{port}/b", f"http://10.1.2.3:{port}/c",
               f"http://[::ffff:127.0.0.1]:{port}/d", f"http://localhost:{port}/e", f"http://[::1]:{port}/h",
               f"http://0.0.0.0:{port}/i"]
    # Odd spellings of loopback: aiohttp refuses 127.1 as a URL and "localhost." does not resolve here (it
    # does with some resolvers, which the guard then checks); they fail as attempts, and never arrive either.
    odd = [f"http://127.1:{port}/g", f"http://localhost.:{port}/f"]
    app = {**APP_A, "id": "333333"}
    servers = []
    try:
        guarded = start_server(tmp_path / "guarded", [app], env=FAST)
        servers.append(guarded)
        for url in blocked + odd:
            add_webhook(guarded, app["id"], url, "--event", "channel_occupied")
        time.sleep(0.3)  # the app cache (TTL 0.1 s) sees the targets
        client = connect_raw(guarded, app["key"])
        for n in range(3):
            client.subscribe(f"ssrf-{n}")  # three channel_occupied events for each of the targets
        deadline = time.monotonic() + 10
        while _webhook_stats(guarded)["events_refused"] < 3 * len(blocked):
            assert time.monotonic() < deadline, _webhook_stats(guarded)
            time.sleep(0.05)
        time.sleep(0.5)  # time for a (wrong) retry or a late request to arrive
        stats = _webhook_stats(guarded)
        # each refusal happens before any connection: the resolver (or the URL check) refuses the address
        assert stats["events_refused"] == 3 * len(blocked), stats
        assert stats["events_delivered"] == 0, stats
        assert receiver.snapshot() == []
        client.close()

        # the control: the same listener, allowed, is reached (so it would have shown a request above)
        allowed = start_server(tmp_path / "allowed", [app], env={**FAST, "VASK_WEBHOOK_ALLOW_PRIVATE": "true"})
        servers.append(allowed)
        add_webhook(allowed, app["id"], f"http://localhost:{port}/allowed")
        time.sleep(0.3)
        client = connect_raw(allowed, app["key"])
        client.subscribe("ssrf-control")
        received = receiver.wait(lambda r: len(r) >= 1)
        assert [r.path for r in received] == ["/allowed"]
        client.close()
    finally:
        for server in servers:
            _stop(server)
        receiver.close()


# -- admin API tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Bearer wrong", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", TOKEN,
    f"bearer{TOKEN}", f"Basic {TOKEN}", f"Bearer  {TOKEN}"])
def test_admin_api_refuses_missing_or_wrong_tokens(two_apps: VaskServer, authorization: str | None) -> None:
    for path in ("/api/accounts", "/api/meter", "/api/webhooks", "/metrics", "/api/nowhere"):
        status, (body, challenge) = admin_get(two_apps, path, authorization)
        assert status == 401, (path, authorization, status)
        assert challenge == 'Bearer realm="vask-admin"'
        assert b"vask_" not in body and b"accounts" not in body
    # Outside /api/ the dashboard owns the port: a token is no session, and nothing leaks.
    host, port = admin_url(two_apps).removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", "/nowhere", headers={"Authorization": authorization} if authorization else {})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status in (302, 303, 404), response.status
    assert b"vask_" not in body and b"key-a" not in body


def test_admin_api_answers_the_right_token(two_apps: VaskServer) -> None:
    status, body = admin_get(two_apps, "/api/accounts")
    assert status == 200 and "accounts" in json.loads(body)
    status, body = admin_get(two_apps, "/metrics")
    assert status == 200 and b"vask_" in body


# -- CORS ---------------------------------------------------------------------------------------


def _preflight(server: VaskServer, origin: str) -> requests.Response:
    return requests.options(f"{server.http_url}/apps/{APP_A['id']}/events", timeout=5, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})


def _cors_headers(response: requests.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def test_cors_is_off_by_default(two_apps: VaskServer) -> None:
    preflight = _preflight(two_apps, "https://evil.example")
    assert preflight.status_code == 405 and _cors_headers(preflight) == {}
    read = requests.get(f"{two_apps.http_url}/apps/{APP_A['id']}/channels", timeout=5,
                        headers={"Origin": "https://evil.example"})
    assert _cors_headers(read) == {}
    signed_read = signed(two_apps, "GET", f"/apps/{APP_A['id']}/channels", key=APP_A["key"],
                         secret=APP_A["secret"])
    assert signed_read.status_code == 200 and _cors_headers(signed_read) == {}


def test_cors_allows_only_the_configured_origins(tmp_path: Path) -> None:
    server = start_server(tmp_path, [APP_A], env={**FAST, "VASK_CORS_ORIGINS": "https://ok.example, https://b.example"})
    try:
        allowed = _preflight(server, "https://ok.example")
        assert allowed.status_code == 204, allowed.text
        assert _cors_headers(allowed) == {
            "access-control-allow-origin": "https://ok.example", "access-control-allow-methods": "GET, POST",
            "access-control-allow-headers": "Content-Type", "access-control-max-age": "600"}
        assert allowed.headers["Vary"] == "Origin"
        refused = _preflight(server, "https://evil.example")
        assert refused.status_code == 405 and _cors_headers(refused) == {}
        path = f"/apps/{APP_A['id']}/events"
        response = requests.post(  # a signed publish from the allowed origin can be read by its page
            signed(server, "POST", path, trigger_body(["c"]), key=APP_A["key"], secret=APP_A["secret"]).url,
            data=trigger_body(["c"]), timeout=5, headers={"Origin": "https://b.example"})
        assert response.status_code == 200, response.text
        assert _cors_headers(response) == {"access-control-allow-origin": "https://b.example"}
        unsigned = requests.get(f"{server.http_url}/apps/{APP_A['id']}/channels", timeout=5,
                                headers={"Origin": "https://ok.example"})
        assert unsigned.status_code == 401  # CORS changes who may read answers, never who is authorized
        health = requests.get(f"{server.http_url}/up", timeout=5, headers={"Origin": "https://ok.example"})
        assert health.status_code == 200 and _cors_headers(health) == {}
        other = requests.get(f"{server.http_url}/apps/{APP_A['id']}/channels", timeout=5,
                             headers={"Origin": "https://evil.example"})
        assert _cors_headers(other) == {}
    finally:
        _stop(server)
