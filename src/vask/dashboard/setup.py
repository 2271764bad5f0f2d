"""Mounting the dashboard on the control-plane aiohttp app of a running node."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from vask.apps.base import AppStore
from vask.billing.base import BillingStore
from vask.config import Settings
from vask.dashboard import open_dashboard_store
from vask.dashboard.context import Dashboard
from vask.dashboard.server import create

if TYPE_CHECKING:
    from vask.server.node import ServerState
    from vask.webhooks.deliveries import DeliveryLog


def mount(app: web.Application, settings: Settings, store: AppStore, billing: BillingStore,
          state: ServerState | None, data_port: int, deliveries: DeliveryLog | None = None) -> str:
    """Add the dashboard to ``app``; return the path of the one-time operator login."""
    users = open_dashboard_store(settings)
    scheme = "https" if settings.tls else "http"
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    secure = settings.dashboard_secure_cookies if settings.dashboard_secure_cookies is not None else settings.tls
    board = Dashboard(apps=store, billing=billing, users=users, data_url=f"{scheme}://{host}:{data_port}",
                      state=state, deliveries=deliveries, secure_cookies=secure,
                      signup_enabled=settings.dashboard_signup)

    async def close(_: web.Application) -> None:
        users.close()

    app.on_cleanup.append(close)
    create(board, app)
    assert board.once.value is not None
    return f"/login/once?token={board.once.value}"
