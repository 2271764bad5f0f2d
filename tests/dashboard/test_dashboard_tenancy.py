"""A member of account A can never see or change anything of account B: every app route, GET and POST."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dash_helpers import csrf, post, signup
from test_dashboard_auth import board

from vask.dashboard.context import Dashboard
from vask.dashboard.server import create

pytestmark = pytest.mark.asyncio(loop_scope="function")

GET_ROUTES = ("", "/keys", "/settings", "/webhooks", "/console", "/console/stream", "/stats.json")
POST_ROUTES = ("/rotate", "/enabled", "/settings", "/webhooks", "/webhooks/remove", "/events")


async def test_account_b_cannot_reach_account_a() -> None:
    dash: Dashboard = board()
    async with TestClient(TestServer(create(dash))) as a, TestClient(TestServer(create(dash))) as b:
        await signup(a, "alice@example.com", "Alpha")
        await post(a, "/apps", {"name": "alpha-prod"})
        await signup(b, "bert@example.com", "Beta")
        (app,) = dash.apps.list()
        before = app.model_dump()
        assert "alpha-prod" in await (await a.get(f"/apps/{app.id}")).text()
        listing = await (await b.get("/apps")).text()
        assert "alpha-prod" not in listing and app.key not in listing
        for suffix in GET_ROUTES:
            response = await b.get(f"/apps/{app.id}{suffix}", allow_redirects=False)
            text = await response.text()
            assert response.status == 404, suffix
            assert app.secret not in text and app.key not in text, suffix
        token = await csrf(b, "/apps")
        for suffix in POST_ROUTES:
            response = await b.post(f"/apps/{app.id}{suffix}", allow_redirects=False,
                                    data={"csrf": token, "enabled": "0", "url": "https://example.com/h",
                                          "index": "0", "client_events": "1", "channel": "c", "event": "e"})
            assert response.status == 404, suffix
        assert dash.apps.get_by_id(app.id).model_dump() == before  # type: ignore[union-attr]
        # B's usage page is B's account; asking for A's account is ignored for members
        alice = dash.users.user_by_email("alice@example.com")
        assert alice is not None and alice.account_id is not None
        text = await (await b.get(f"/account?account={alice.account_id}")).text()
        assert "Beta" in text and alice.account_id not in text
        assert (await b.get("/accounts")).status == 403
        # an unknown app is the same 404 as another account's app
        assert (await b.get("/apps/does-not-exist/keys")).status == 404


async def test_members_cannot_use_apps_of_the_default_account() -> None:
    dash = board()
    from vask.apps.base import new_app

    operator_app = dash.apps.create(new_app(name="ops"))
    async with TestClient(TestServer(create(dash))) as client:
        await signup(client, "m@example.com")
        assert (await client.get(f"/apps/{operator_app.id}/keys")).status == 404
        assert "ops" not in await (await client.get("/apps")).text()


async def test_operator_sees_every_account() -> None:
    dash = board()
    async with TestClient(TestServer(create(dash))) as member, TestClient(TestServer(create(dash))) as op:
        await signup(member, "x@example.com", "Xeno")
        await post(member, "/apps", {"name": "xeno-app"})
        (app,) = dash.apps.list()
        assert dash.once.value is not None
        await op.get(f"/login/once?token={dash.once.value}")
        assert "xeno-app" in await (await op.get("/apps")).text()
        assert app.secret in await (await op.get(f"/apps/{app.id}/keys")).text()
        assert "Xeno" in await (await op.get("/accounts")).text()
