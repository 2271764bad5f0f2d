"""App management: the list, create, overview, keys (rotate the secret), enable/disable, App Settings."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from vask.apps.base import AppExists, AppSettings, new_app
from vask.billing.plans import DEFAULT_ACCOUNT_ID, account_of
from vask.dashboard.context import dashboard, user_of, visible_app
from vask.dashboard.html import app_header, csrf_field, e, errors_box, field, notice, page, table, toggle

# (field, label, hint) of the App Settings page, as hosted Pusher names them
TOGGLES = (
    ("client_events", "Enable client events", "Clients may trigger client-* events on private and presence channels."),
    ("user_authentication_required", "Enable authorized connections",
     "Connections must sign in (pusher.signin()) within the timeout or are closed."),
    ("subscription_count_events", "Enable subscription counting",
     "Subscribers get pusher:subscription_count events on each channel."),
)
LIMITS = (
    ("max_connections", "Max connections", "Concurrent connections of this app; empty: no app limit.", True),
    ("max_client_events_per_second", "Client events per second, per connection", "", False),
    ("max_backend_events_per_second", "HTTP publishes per second", "Empty: unlimited.", True),
    ("max_read_requests_per_second", "HTTP reads per second", "Empty: unlimited.", True),
    ("max_event_data_bytes", "Max event data (bytes)", "Pusher's limit is 10240.", False),
    ("max_channels_per_trigger", "Max channels per trigger", "", False),
    ("max_batch_size", "Max events per batch", "", False),
    ("max_presence_members", "Max presence members per channel", "", False),
    ("user_authentication_timeout", "Sign-in timeout (seconds)", "For authorized connections.", False),
    ("activity_timeout", "Activity timeout (seconds)", "Sent to clients in pusher:connection_established.", False),
)


def _app_link(app: Any) -> str:
    return f'<a href="/apps/{e(app.id)}">{e(app.name or app.id)}</a>'


async def list_apps(request: web.Request, errors: tuple[str, ...] = (), name: str = "",
                    status: int = 200) -> web.Response:
    board = dashboard(request)
    user = user_of(request)
    apps = [a for a in await board.run(board.apps.list) if user.can_see(account_of(a.account_id))]
    rows = [(_app_link(a), f"<code>{e(a.id)}</code>", f"<code>{e(a.key)}</code>", e(account_of(a.account_id)),
             '<span class="badge ok">enabled</span>' if a.enabled else '<span class="badge off">disabled</span>')
            for a in apps]
    body = f"""<div class="page-head"><h1>Apps</h1></div>
<div class="grid two"><section class="card">{table(["Name", "App id", "Key", "Account", "State"], rows,
                                                  "No apps yet: create your first one.")}</section>
<section class="card"><h2>Create an app</h2>{errors_box(errors)}
<form method="post" action="/apps" novalidate>{csrf_field(request)}
{field("App name", "name", name, hint="For you only, e.g. my-chat-production.", attrs="required maxlength=100")}
<button class="primary" type="submit">Create app</button></form></section></div>"""
    return page(request, "Apps", body, status=status)


async def apps_page(request: web.Request) -> web.Response:
    return await list_apps(request)


async def create_app(request: web.Request) -> web.StreamResponse:
    board = dashboard(request)
    user = user_of(request)
    name = str((await request.post()).get("name", "")).strip()
    if not name:
        return await list_apps(request, ("Enter a name for the app.",), name, status=400)
    if len(name) > 100:
        return await list_apps(request, ("The app name may have at most 100 characters.",), name, status=400)
    account = None if user.is_operator else user.account_id
    for _ in range(5):
        try:
            app = await board.run(board.apps.create, new_app(name=name, account_id=account))
            break
        except AppExists:
            continue
    else:
        raise RuntimeError("could not pick a free app id")
    raise web.HTTPSeeOther(f"/apps/{app.id}/keys?created=1")


async def overview(request: web.Request) -> web.Response:
    app = await visible_app(request)
    board = dashboard(request)
    stats = "" if board.state is not None and board.state.stats_query is not None else \
        notice("Statistics are not recorded by this server.", "warn")
    body = f"""{app_header(app, "")}{stats}
<div class="grid four">
<div class="card stat"><span class="label">Connections now</span><b id="stat-connections">&ndash;</b>
<span class="muted" id="stat-nodes"></span></div>
<div class="card stat"><span class="label">Peak connections this month</span><b id="stat-peak">&ndash;</b></div>
<div class="card stat"><span class="label">Channels occupied</span><b id="stat-channels">&ndash;</b></div>
<div class="card stat"><span class="label">Broadcasts this month</span><b id="stat-month">&ndash;</b>
<span class="muted" id="stat-deliveries"></span></div></div>
<section class="card"><div class="chart-head"><h2>Last hour, per minute</h2><div class="legend">
<span class="key k1"></span>broadcasts <span class="key k2"></span>deliveries
<span class="key k3"></span>peak connections</div>
</div><div id="chart-hour" class="chart" role="img" aria-label="broadcasts, deliveries and connections per minute">
</div></section>
<section class="card"><h2>This month, per day</h2><div id="chart-month" class="chart" role="img"
aria-label="broadcasts and deliveries per day"></div></section>
<section class="card"><h2>Connections by node and region</h2><div id="by-node" class="muted">&ndash;</div></section>"""
    return page(request, f"{app.name or app.id}", body, script="overview.js", data={"app": app.id})


async def keys(request: web.Request) -> web.Response:
    app = await visible_app(request)
    message = "App created. These are its credentials." if "created" in request.query else \
        "A new secret was issued: update your servers." if "rotated" in request.query else None
    env = (f"PUSHER_APP_ID={app.id}\nPUSHER_KEY={app.key}\nPUSHER_SECRET={app.secret}\n"
           f"PUSHER_HOST={request.url.host}\n")
    enabled_label = "Disable app" if app.enabled else "Enable app"
    body = f"""{app_header(app, "/keys")}{notice(message)}
<section class="card"><h2>App keys</h2><dl class="keys">
<dt>app_id</dt><dd><code class="copy">{e(app.id)}</code></dd>
<dt>key</dt><dd><code class="copy">{e(app.key)}</code></dd>
<dt>secret</dt><dd><code class="copy secret" id="secret">{e(app.secret)}</code></dd></dl>
<pre class="snippet">{e(env)}</pre></section>
<div class="grid two"><section class="card"><h2>Rotate the secret</h2><p class="muted">Issues a new secret at once;
requests signed with the old one are refused from now on.</p><form method="post" action="/apps/{e(app.id)}/rotate"
>{csrf_field(request)}<button class="danger" type="submit">Rotate secret</button></form></section>
<section class="card"><h2>{"Enabled" if app.enabled else "Disabled"}</h2><p class="muted">A disabled app refuses new
connections (4003) and closes the open ones; HTTP publishes are refused.</p>
<form method="post" action="/apps/{e(app.id)}/enabled">{csrf_field(request)}
<input type="hidden" name="enabled" value="{"0" if app.enabled else "1"}">
<button class="{"danger" if app.enabled else "primary"}" type="submit">{enabled_label}</button></form>
</section></div>"""
    return page(request, f"Keys · {app.name or app.id}", body)


async def rotate(request: web.Request) -> web.StreamResponse:
    app = await visible_app(request)
    board = dashboard(request)
    app = await board.run(board.apps.update, app.model_copy(update={"secret": secrets.token_hex(10)}))
    await board.app_changed(app)
    raise web.HTTPSeeOther(f"/apps/{app.id}/keys?rotated=1")


async def set_enabled(request: web.Request) -> web.StreamResponse:
    app = await visible_app(request)
    board = dashboard(request)
    enabled = str((await request.post()).get("enabled", "")) == "1"
    app = await board.run(board.apps.update, app.model_copy(update={"enabled": enabled}))
    await board.app_changed(app)
    raise web.HTTPSeeOther(f"/apps/{app.id}/keys")


def _settings_form(request: web.Request, app: Any, values: dict[str, Any], errors: dict[str, str],
                   message: str | None = None, status: int = 200) -> web.Response:
    toggles = "".join(toggle(label, name, bool(values.get(name)), hint) for name, label, hint in TOGGLES)
    limits = "".join(field(label, name, "" if values.get(name) is None else str(values.get(name)), kind="text",
                           hint=hint, error=errors.get(name), attrs='inputmode="numeric"')
                     for name, label, hint, _ in LIMITS)
    top = errors_box(["Some settings were not saved: see the fields marked below."] if errors else [])
    body = f"""{app_header(app, "/settings")}{notice(message)}{top}
<form method="post" action="/apps/{e(app.id)}/settings" novalidate>{csrf_field(request)}
<section class="card"><h2>App settings</h2><div class="toggles">{toggles}</div></section>
<section class="card"><h2>Limits</h2><div class="grid fields">{limits}</div></section>
<button class="primary" type="submit">Save settings</button></form>"""
    return page(request, f"Settings · {app.name or app.id}", body, status=status)


async def settings_page(request: web.Request) -> web.Response:
    app = await visible_app(request)
    return _settings_form(request, app, app.settings.model_dump(), {},
                          "Settings saved." if "saved" in request.query else None)


async def save_settings(request: web.Request) -> web.StreamResponse:
    app = await visible_app(request)
    board = dashboard(request)
    form = await request.post()
    values: dict[str, Any] = app.settings.model_dump()
    errors: dict[str, str] = {}
    for name, _, _ in TOGGLES:
        values[name] = str(form.get(name, "")) == "1"
    for name, label, _, optional in LIMITS:
        raw = str(form.get(name, "")).strip()
        if not raw and optional:
            values[name] = None
        elif raw.isdigit() and len(raw) < 10:
            values[name] = int(raw)
        else:
            errors[name] = f"{label}: enter a whole number" + (" or leave it empty." if optional else ".")
            values[name] = raw
    if not errors:
        try:
            settings = AppSettings(**values)
        except ValidationError as exc:
            for problem in exc.errors():
                name = str(problem["loc"][0]) if problem["loc"] else "form"
                errors[name] = problem["msg"].removeprefix("Value error, ")
        else:
            app = await board.run(board.apps.update, app.model_copy(update={"settings": settings}))
            await board.app_changed(app)
            raise web.HTTPSeeOther(f"/apps/{app.id}/settings?saved=1")
    return _settings_form(request, app, values, errors, status=400)


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/apps", apps_page)
    router.add_post("/apps", create_app)
    router.add_get("/apps/{app}", overview)
    router.add_get("/apps/{app}/keys", keys)
    router.add_post("/apps/{app}/rotate", rotate)
    router.add_post("/apps/{app}/enabled", set_enabled)
    router.add_get("/apps/{app}/settings", settings_page)
    router.add_post("/apps/{app}/settings", save_settings)


__all__ = ["DEFAULT_ACCOUNT_ID", "register"]
