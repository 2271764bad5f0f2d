"""Sign-up, sign-in, the one-time operator login, invites, CSRF and the login rate limit, on the dashboard's
real aiohttp app with in-memory stores (no node: what needs one is in test_dashboard_browser.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from dash_helpers import csrf, post, signup

from vask.apps.memory import MemoryAppStore
from vask.billing.memory import MemoryBillingStore
from vask.dashboard.context import Dashboard
from vask.dashboard.security import LoginLimiter, OneTimeLogin, check_password, hash_password
from vask.dashboard.server import COOKIE, create
from vask.dashboard.users import MemoryDashboardStore

Scenario = Callable[[TestClient[Any, Any], Dashboard], Awaitable[None]]


def board() -> Dashboard:
    return Dashboard(apps=MemoryAppStore(), billing=MemoryBillingStore(), users=MemoryDashboardStore(),
                     data_url="http://127.0.0.1:1")


def run(scenario: Scenario, dash: Dashboard | None = None) -> None:
    dash = dash or board()

    async def main() -> None:
        async with TestClient(TestServer(create(dash))) as client:
            await scenario(client, dash)

    asyncio.run(main())


def test_signup_creates_an_account_and_signs_in() -> None:
    async def scenario(client: TestClient[Any, Any], dash: Dashboard) -> None:
        response = await signup(client, "Ada@Example.com", "Ada's Apps")
        assert response.headers["Location"] == "/apps"
        cookie = response.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
        user = dash.users.user_by_email("ada@example.com")
        assert user is not None and user.role == "owner" and user.password_hash.startswith("$argon2id$")
        account = dash.billing.get_account(user.account_id or "")
        assert account is not None and account.name == "Ada's Apps" and account.plan == "free"
        assert "ada@example.com" in await (await client.get("/apps")).text()
        # the session is stored as a digest only
        assert all(cookie.value not in key for key in dash.users.sessions)  # type: ignore[attr-defined]

    run(scenario)


def test_signup_validates_every_field() -> None:
    async def scenario(client: TestClient[Any, Any], dash: Dashboard) -> None:
        response = await post(client, "/signup", {"account": "", "email": "not-an-email", "password": "short"})
        text = await response.text()
        assert response.status == 400
        for message in ("Enter a name for your account.", "Enter a valid email address",
                        "at least 10 characters"):
            assert message in text
        await signup(client, "taken@example.com")
        client.session.cookie_jar.clear()
        response = await post(client, "/signup", {"account": "X", "email": "TAKEN@example.com",
                                                  "password": "another long one"})
        assert response.status == 400 and "already exists" in await response.text()

    run(scenario)


def test_login_logout_and_wrong_password() -> None:
    async def scenario(client: TestClient[Any, Any], dash: Dashboard) -> None:
        await signup(client, "bob@example.com")
        await post(client, "/logout", {}, page="/apps")
        assert (await client.get("/apps", allow_redirects=False)).headers["Location"] == "/login"
        response = await post(client, "/login", {"email": "bob@example.com", "password": "wrong password!"})
        assert response.status == 401 and "Wrong email or password." in await response.text()
        response = await post(client, "/login", {"email": "bob@example.com", "password": "correct horse battery"})
        assert response.status == 303

    run(scenario)


def test_login_attempts_are_rate_limited() -> None:
    dash = board()
    now = [1000.0]
    dash.limiter = LoginLimiter(attempts=5, window=300, clock=lambda: now[0])

    async def scenario(client: TestClient[Any, Any], dash: Dashboard) -> None:
        await signup(client, "eve@example.com")
        client.session.cookie_jar.clear()
        for _ in range(5):
            response = await post(client, "/login", {"email": "eve@example.com", "password": "guess guess guess"})
            assert response.status == 401
        # the right password is refused too while limited: a guesser cannot tell
        response = await post(client, "/login", {"email": "eve@example.com", "password": "correct horse battery"})
        assert response.status == 429 and int(response.headers["Retry-After"]) > 0
        assert "Too many failed sign-ins" in await response.text()
        now[0] += 301
        response = await post(client, "/login", {"email": "eve@example.com", "password": "correct horse battery"})
        assert response.status == 303

    run(scenario, dash)


def test_every_post_needs_the_csrf_token() -> None:
    async def scenario(client: TestClient[Any, Any], dash: Dashboard) -> None:
        await signup(client, "carol@example.com")
        for path in ("/apps", "/logout", "/account/invites"):
            response = await client.post(path, data={"name": "x"}, allow_redirects=False)
            assert response.status == 403, path
            bad = await client.post(path, data={"name": "x", "csrf": "forged"}, allow_redirects=False)
            assert bad.status == 403, path
        assert dash.apps.list() == []  # nothing was created by the refused posts
        # the anonymous forms too (double-submit cookie)
        client.session.cookie_jar.clear()
        response = await client.post("/login", data={"email": "carol@example.com", "password": "x"})
        assert response.status == 403

    run(scenario)


def test_one_time_operator_login_works_once() -> None:
    async def scenario(client: TestClient[Any, Any], dash: Dashboard) -> None:
        assert dash.once.value is not None
        link = f"/login/once?token={dash.once.value}"
        response = await client.get(link, allow_redirects=False)
        assert response.status == 303
        text = await (await client.get("/accounts")).text()
        assert "default" in text and "(operator)" in text
        client.session.cookie_jar.clear()
        again = await client.get(link, allow_redirects=False)
        assert again.status == 403 and "used already" in await again.text()

    run(scenario)


def test_one_time_login_expires() -> None:
    now = [0.0]
    once = OneTimeLogin(ttl=60, clock=lambda: now[0])
    value = once.value
    assert value is not None and not once.take("wrong")
    now[0] = 61
    assert not once.take(value)


def test_invite_joins_the_inviters_account() -> None:
    async def scenario(client: TestClient[Any, Any], dash: Dashboard) -> None:
        await signup(client, "owner@example.com", "Team")
        owner = dash.users.user_by_email("owner@example.com")
        assert owner is not None
        response = await post(client, "/account/invites", {"email": "new@example.com"}, page="/account")
        text = await response.text()
        link = re.search(r"http://[^ ]+/invite/([A-Za-z0-9_-]+)", text)
        assert response.status == 200 and link, text
        client.session.cookie_jar.clear()
        path = f"/invite/{link.group(1)}"
        assert "new@example.com" in await (await client.get(path)).text()
        response = await post(client, path, {"email": "new@example.com", "password": "a long password"})
        assert response.status == 303
        member = dash.users.user_by_email("new@example.com")
        assert member is not None and member.role == "member" and member.account_id == owner.account_id
        client.session.cookie_jar.clear()
        assert (await client.get(path)).status == 404  # used once

    run(scenario)


def test_passwords_are_argon2() -> None:
    stored = hash_password("a long password")
    assert stored.startswith("$argon2id$") and check_password(stored, "a long password")
    assert not check_password(stored, "a long passworD") and not check_password("", "anything")


def test_csrf_field_is_on_every_form() -> None:
    async def scenario(client: TestClient[Any, Any], dash: Dashboard) -> None:
        await signup(client, "forms@example.com")
        await post(client, "/apps", {"name": "forms"})
        app_id = dash.apps.list()[0].id
        for path in ("/apps", f"/apps/{app_id}/keys", f"/apps/{app_id}/settings", f"/apps/{app_id}/webhooks",
                     f"/apps/{app_id}/console", "/account"):
            text = await (await client.get(path)).text()
            forms = text.count('method="post"')
            assert forms and text.count('name="csrf"') >= forms, path
        assert await csrf(client, "/apps")

    run(scenario)
