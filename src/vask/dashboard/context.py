"""What every dashboard handler reaches: the stores, the running node's state, and the request's user."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from vask.apps.base import App, AppStore
from vask.billing.base import BillingStore
from vask.billing.plans import account_of
from vask.dashboard.security import LoginLimiter, OneTimeLogin
from vask.dashboard.users import DashboardStore, Session, User

if TYPE_CHECKING:
    from vask.server.node import ServerState
    from vask.webhooks.deliveries import DeliveryLog


@dataclass
class Dashboard:
    apps: AppStore
    billing: BillingStore
    users: DashboardStore
    data_url: str  # where the event creator sends its signed publishes (this node's data plane)
    state: ServerState | None = None  # the running node (live feed, stats, app cache); None in unit tests
    deliveries: DeliveryLog | None = None
    secure_cookies: bool = False
    session_ttl: float = 7 * 24 * 3600.0
    limiter: LoginLimiter = field(default_factory=LoginLimiter)
    once: OneTimeLogin = field(default_factory=OneTimeLogin)
    clock: Callable[[], float] = time.time
    signup_enabled: bool = True

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A blocking store call, off the event loop."""
        return await asyncio.to_thread(fn, *args)

    async def app_changed(self, app: App) -> None:
        """Connections and the data plane's app cache follow a change made here at once."""
        if self.state is not None:
            self.state.apps.update(app)
            self.state.hub.refresh_app(app.id, app)


DASHBOARD = web.AppKey("dashboard", Dashboard)
USER = web.RequestKey("user", User)
SESSION = web.RequestKey("session", Session)
CSRF = web.RequestKey("csrf", str)  # the double-submit token of a visitor not signed in


def dashboard(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD]


def user_of(request: web.Request) -> User:
    user = request.get(USER)
    if user is None:
        raise web.HTTPFound("/login")
    assert isinstance(user, User)
    return user


def session_of(request: web.Request) -> Session | None:
    found = request.get(SESSION)
    return found if isinstance(found, Session) else None


async def visible_app(request: web.Request) -> App:
    """The app named in the path, if this user may see it; 404 otherwise (the same answer whether the app
    exists in another account or not at all, so ids cannot be probed)."""
    user = user_of(request)
    app: App | None = await dashboard(request).run(dashboard(request).apps.get_by_id, request.match_info["app"])
    if app is None or not user.can_see(account_of(app.account_id)):
        raise web.HTTPNotFound(text="No such app in your account.")
    return app
