"""Forms validate and say what is wrong; settings and webhooks are saved to the app store."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from dash_helpers import post, signup
from test_dashboard_auth import board

from vask.dashboard.server import create

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_app_create_settings_webhooks_rotate() -> None:
    dash = board()
    async with TestClient(TestServer(create(dash))) as client:
        await signup(client, "f@example.com")
        response = await post(client, "/apps", {"name": " "})
        assert response.status == 400 and "Enter a name for the app." in await response.text()
        response = await post(client, "/apps", {"name": "chat"})
        assert response.status == 303
        (app,) = dash.apps.list()
        base = f"/apps/{app.id}"
        response = await post(client, f"{base}/settings", {"client_events": "1", "max_connections": "ten",
                                                           "max_event_data_bytes": "0"})
        text = await response.text()
        assert response.status == 400 and "Max connections: enter a whole number or leave it empty." in text
        good = {"client_events": "1", "max_connections": "25", "max_event_data_bytes": "2048",
                "activity_timeout": "60", "max_client_events_per_second": "10", "max_channels_per_trigger": "100",
                "max_batch_size": "10", "max_presence_members": "100", "user_authentication_timeout": "30"}
        response = await post(client, f"{base}/settings", {**good, "max_event_data_bytes": "0"})
        assert response.status == 400 and "greater than or equal to 1" in await response.text()
        response = await post(client, f"{base}/settings", good)
        assert response.status == 303
        saved = dash.apps.get_by_id(app.id)
        assert saved is not None and saved.settings.client_events and saved.settings.max_connections == 25
        assert saved.settings.max_event_data_bytes == 2048 and saved.settings.max_backend_events_per_second is None
        response = await post(client, f"{base}/webhooks", {"url": "ftp://x"})
        assert response.status == 400 and "http:// or https://" in await response.text()
        response = await post(client, f"{base}/webhooks", {"url": "https://hooks.example.com/p",
                                                           "event_types": "channel_occupied", "batch": "1"})
        assert response.status == 303
        saved = dash.apps.get_by_id(app.id)
        assert saved is not None and saved.settings.webhooks[0].event_types == ["channel_occupied"]
        assert saved.settings.webhooks[0].batch
        response = await post(client, f"{base}/webhooks", {"url": "https://hooks.example.com/p"})
        assert response.status == 400 and "already a target" in await response.text()
        response = await post(client, f"{base}/webhooks/remove", {"index": "0"}, page=f"{base}/webhooks")
        assert response.status == 303 and dash.apps.get_by_id(app.id).settings.webhooks == []  # type: ignore[union-attr]
        response = await post(client, f"{base}/rotate", {}, page=f"{base}/keys")
        assert response.status == 303 and dash.apps.get_by_id(app.id).secret != app.secret  # type: ignore[union-attr]
        response = await post(client, f"{base}/enabled", {"enabled": "0"}, page=f"{base}/keys")
        assert response.status == 303 and not dash.apps.get_by_id(app.id).enabled  # type: ignore[union-attr]
        response = await post(client, f"{base}/events", {"channel": "has space", "event": "pusher:x"},
                              page=f"{base}/console")
        errors = (await response.json())["errors"]
        assert response.status == 400 and "no spaces" in errors["channel"] and "reserved" in errors["event"]
        response = await client.get("/calculator?broadcasts=abc&subscribers=5")
        assert response.status == 400 and "Broadcasts per month: enter a whole number" in await response.text()
        text = await (await client.get("/calculator?broadcasts=1000&subscribers=50")).text()
        assert "51,000" in text  # 1,000 publishes + 50,000 delivered copies, billed per message
