"""The dashboard's aiohttp plumbing: sessions from cookies, CSRF on every POST, security headers, errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from vask.dashboard import security
from vask.dashboard.context import CSRF, DASHBOARD, SESSION, USER, Dashboard, dashboard
from vask.dashboard.html import e, page
from vask.dashboard.users import Session, User, digest

log = logging.getLogger("vask.dashboard")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "vask_session"
CSRF_COOKIE = "vask_csrf"  # for the forms shown before signing in (login, sign-up, invites)
STATIC = Path(__file__).parent / "static"
# The admin API has its own bearer token; the dashboard's middlewares leave it alone.
API_PREFIXES = ("/api/", "/metrics")
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def _ours(request: web.Request) -> bool:
    return not request.path.startswith(API_PREFIXES)


def set_cookie(response: web.StreamResponse, board: Dashboard, name: str, value: str, max_age: float) -> None:
    response.set_cookie(name, value, max_age=int(max_age), path="/", httponly=True, samesite="Strict",
                        secure=board.secure_cookies)


async def start_session(request: web.Request, user: User, location: str = "/apps") -> web.Response:
    board = dashboard(request)
    old = request.get(SESSION)
    if isinstance(old, Session):  # a new login never reuses the old session's token (fixation)
        await board.run(board.users.delete_session, old.token_hash)
    value = security.token()
    session = Session(digest(value), user.id, security.token(), board.clock() + board.session_ttl)
    await board.run(board.users.put_session, session)
    response = web.Response(status=303, headers={"Location": location})
    set_cookie(response, board, COOKIE, value, board.session_ttl)
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A dashboard failure is an error page, never a crash; the data plane runs in another server."""
    if not _ours(request):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status in (403, 404, 429) and exc.text and request.method == "GET":
            return page(request, exc.reason, f'<div class="card narrow"><h1>{exc.status} · {e(exc.reason)}</h1>'
                        f'<p>{e(exc.text)}</p><p><a href="/apps">Back to your apps</a></p></div>', status=exc.status)
        raise
    except Exception:
        log.exception("dashboard error on %s %s", request.method, request.path)
        return page(request, "Error", '<div class="card narrow"><h1>Something went wrong</h1><p>The dashboard '
                    'could not do that; the error is in the server log. Realtime traffic is not affected.</p></div>',
                    status=500)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.content_type == "text/html":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


@web.middleware
async def sessions(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _ours(request) or request.path.startswith("/static/"):
        return await handler(request)
    board = dashboard(request)
    value = request.cookies.get(COOKIE)
    if value:
        session = await board.run(board.users.get_session, digest(value), board.clock())
        if session is not None:
            user = await board.run(board.users.get_user, session.user_id)
            if user is not None:
                request[SESSION] = session
                request[USER] = user
    fresh_csrf = None
    if SESSION not in request:
        request[CSRF] = request.cookies.get(CSRF_COOKIE) or ""
        if not request[CSRF]:
            fresh_csrf = request[CSRF] = security.token()
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        await _check_csrf(request)
    response = await handler(request)
    if fresh_csrf is not None:
        set_cookie(response, board, CSRF_COOKIE, fresh_csrf, 24 * 3600)
    return response


async def _check_csrf(request: web.Request) -> None:
    session = request.get(SESSION)
    expected = session.csrf if isinstance(session, Session) else request.cookies.get(CSRF_COOKIE, "")
    given = request.headers.get("X-CSRF-Token", "")
    if not given and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        given = str((await request.post()).get("csrf", ""))
    if not expected or not given or not security.same(expected, given):
        raise web.HTTPForbidden(text="The form expired or did not come from this dashboard (CSRF check failed). "
                                     "Reload the page and try again.")


def create(board: Dashboard, app: web.Application | None = None) -> web.Application:
    """The dashboard's routes on ``app`` (the control plane, beside the admin API) or on a new app."""
    from vask.dashboard import app_routes, auth_routes, live_routes, usage_routes, webhook_routes

    if app is None:
        app = web.Application()
    app.middlewares.extend([errors, sessions])
    app[DASHBOARD] = board
    auth_routes.register(app.router)
    app_routes.register(app.router)
    live_routes.register(app.router)
    usage_routes.register(app.router)
    webhook_routes.register(app.router)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app
