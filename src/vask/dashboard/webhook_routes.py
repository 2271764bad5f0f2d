"""Webhook targets of an app (add, remove, event filters, batching) and the recent delivery log."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from vask.apps.base import WEBHOOK_EVENT_TYPES, WebhookTarget
from vask.dashboard.context import dashboard, visible_app
from vask.dashboard.html import app_header, csrf_field, e, errors_box, field, notice, page, table


def _ago(at: float) -> str:
    seconds = max(0, int(time.time() - at))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def _page(request: web.Request, app: Any, errors: list[str], values: dict[str, Any], message: str | None = None,
          status: int = 200) -> web.Response:
    board = dashboard(request)
    rows = []
    for index, target in enumerate(app.settings.webhooks):
        filters = ", ".join(target.event_types) or "all events"
        if target.channel_prefix:
            filters += f"; channels starting {target.channel_prefix}"
        if target.channel_suffix:
            filters += f"; channels ending {target.channel_suffix}"
        remove = (f'<form method="post" action="/apps/{e(app.id)}/webhooks/remove">{csrf_field(request)}'
                  f'<input type="hidden" name="index" value="{index}"><button class="link danger">Remove</button>'
                  "</form>")
        rows.append((f"<code>{e(target.url)}</code>", e(filters), "batched" if target.batch else "one per request",
                     remove))
    log_rows = []
    for item in board.deliveries.recent(app.id) if board.deliveries is not None else []:
        state = '<span class="badge ok">delivered</span>' if item.ok else \
            '<span class="badge warn">retrying</span>' if item.retrying else '<span class="badge off">failed</span>'
        log_rows.append((e(_ago(item.at)), f"<code>{e(item.url)}</code>", e(", ".join(item.events)), state,
                         e(str(item.status or "-")), str(item.attempts), e(item.error or "")))
    checks = "".join(f'<label class="check"><input type="checkbox" name="event_types" value="{name}"'
                     f'{" checked" if name in values.get("event_types", []) else ""}> {name}</label>'
                     for name in WEBHOOK_EVENT_TYPES)
    batch = " checked" if values.get("batch") else ""
    body = f"""{app_header(app, "/webhooks")}{notice(message)}
<section class="card"><h2>Webhook targets</h2>{table(["URL", "Events", "Delivery", ""], rows,
                                                     "No webhooks: add a target below.")}</section>
<section class="card"><h2>Add a webhook</h2>{errors_box(errors)}
<form method="post" action="/apps/{e(app.id)}/webhooks" novalidate>{csrf_field(request)}
{field("URL", "url", values.get("url") or "", kind="url", hint="http:// or https://; requests are signed with the "
       "app secret (X-Pusher-Signature).", attrs='placeholder="https://example.com/pusher/webhooks"')}
<fieldset><legend>Events (none ticked: all)</legend><div class="checks">{checks}</div></fieldset>
<div class="grid fields">{field("Channel prefix filter", "channel_prefix", values.get("channel_prefix") or "")}
{field("Channel suffix filter", "channel_suffix", values.get("channel_suffix") or "")}</div>
<label class="check"><input type="checkbox" name="batch" value="1"{batch}> Batch events into one request</label>
<p><button class="primary" type="submit">Add webhook</button></p></form></section>
<section class="card"><h2>Recent deliveries</h2>{table(["When", "URL", "Events", "Result", "HTTP", "Attempts",
                                                        "Last error"], log_rows,
                                                       "No deliveries since the server started.")}</section>"""
    return page(request, f"Webhooks · {app.name or app.id}", body, status=status)


async def webhooks_page(request: web.Request) -> web.Response:
    app = await visible_app(request)
    message = "Webhook added." if "added" in request.query else "Webhook removed." if "removed" in request.query \
        else None
    return _page(request, app, [], {}, message)


async def add_webhook(request: web.Request) -> web.StreamResponse:
    app = await visible_app(request)
    board = dashboard(request)
    form = await request.post()
    values: dict[str, Any] = {
        "url": str(form.get("url", "")).strip(),
        "event_types": [str(v) for v in form.getall("event_types", [])],
        "channel_prefix": str(form.get("channel_prefix", "")).strip() or None,
        "channel_suffix": str(form.get("channel_suffix", "")).strip() or None,
        "batch": str(form.get("batch", "")) == "1",
    }
    errors = []
    if not values["url"]:
        errors.append("Enter the URL the webhooks are sent to.")
    elif any(t.url == values["url"] for t in app.settings.webhooks):
        errors.append("This URL is already a target of this app.")
    if not errors:
        try:
            target = WebhookTarget(**values)
        except ValidationError as exc:
            errors += [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
                       for err in exc.errors()]
        else:
            settings = app.settings.model_copy(update={"webhooks": [*app.settings.webhooks, target]})
            app = await board.run(board.apps.update, app.model_copy(update={"settings": settings}))
            await board.app_changed(app)
            raise web.HTTPSeeOther(f"/apps/{app.id}/webhooks?added=1")
    return _page(request, app, errors, values, status=400)


async def remove_webhook(request: web.Request) -> web.StreamResponse:
    app = await visible_app(request)
    board = dashboard(request)
    raw = str((await request.post()).get("index", ""))
    if not raw.isdigit() or int(raw) >= len(app.settings.webhooks):
        return _page(request, app, ["That webhook no longer exists (the page was out of date)."], {}, status=400)
    targets = [t for i, t in enumerate(app.settings.webhooks) if i != int(raw)]
    settings = app.settings.model_copy(update={"webhooks": targets})
    app = await board.run(board.apps.update, app.model_copy(update={"settings": settings}))
    await board.app_changed(app)
    raise web.HTTPSeeOther(f"/apps/{app.id}/webhooks?removed=1")


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/apps/{app}/webhooks", webhooks_page)
    router.add_post("/apps/{app}/webhooks", add_webhook)
    router.add_post("/apps/{app}/webhooks/remove", remove_webhook)
