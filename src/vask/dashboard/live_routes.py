"""The live parts: stats as JSON for the charts, the debug console (page + SSE stream), the event creator.

The event creator publishes through the data plane's HTTP API with a signed request, exactly as an app
server would, so it is authenticated, limited and metered like any other publish.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from vask.billing.plans import month_of
from vask.console.events import EVENT_TYPES
from vask.console.filters import ConsoleFilter
from vask.dashboard.context import dashboard, visible_app
from vask.dashboard.html import app_header, csrf_field, e, field, page
from vask.protocol.rest_auth import sign_request

KEEPALIVE = 15.0  # seconds between SSE comments, so proxies keep an idle console open


async def stats_json(request: web.Request) -> web.Response:
    app = await visible_app(request)
    board = dashboard(request)
    query = board.state.stats_query if board.state is not None else None
    if query is None:
        return web.json_response({"error": "statistics are not recorded by this server"}, status=503)
    now = time.time()
    month = month_of(now)
    live, minutes, days, peak = await asyncio.gather(
        query.live(app.id), query.minutes(app.id, now - 3600, now), query.days(app.id, month),
        query.peak_connections(app.id, month))
    return web.json_response({"live": live, "minutes": minutes, "days": days, "peak_connections": peak,
                              "month": month, "month_broadcasts": sum(d["broadcasts"] for d in days),
                              "month_deliveries": sum(d["deliveries"] for d in days), "now": now})


async def console_page(request: web.Request) -> web.Response:
    app = await visible_app(request)
    types = "".join(f'<label class="chip"><input type="checkbox" name="types" value="{t}"> {t}</label>'
                    for t in EVENT_TYPES)
    body = f"""{app_header(app, "/console")}
<div class="grid console-grid"><section class="card console-card">
<form id="console-filters" class="filters" onsubmit="return false">
<div class="row">{field("Channel", "channel", attrs='placeholder="exact name, or prefix*"')}
{field("Search", "q", attrs='placeholder="text in the event"')}
<div class="buttons"><button type="button" id="pause" class="secondary">Pause</button>
<button type="button" id="clear" class="secondary">Clear</button></div></div>
<details><summary>Event types (none ticked: all)</summary><div class="chips">{types}</div></details></form>
<div class="console-status"><span id="console-state" class="badge">connecting…</span>
<span id="console-counts" class="muted"></span></div>
<div id="console-log" class="console-log" aria-live="polite"></div></section>
<section class="card"><h2>Event creator</h2><p class="muted">Sends a signed HTTP API publish to this app,
as your server would: it is metered like any other broadcast.</p>
<form id="event-creator" method="post" action="/apps/{e(app.id)}/events" novalidate>{csrf_field(request)}
{field("Channel", "channel", "my-channel", attrs="required")}
{field("Event", "event", "my-event", attrs="required")}
<label class="field"><span class="label">Data</span><textarea name="data" rows="6" spellcheck="false"
>{{"message": "hello world"}}</textarea></label>
<button class="primary" type="submit">Send event</button><div id="creator-result" role="status"></div>
</form></section></div>"""
    return page(request, f"Debug console · {app.name or app.id}", body, script="console.js", data={"app": app.id})


async def console_stream(request: web.Request) -> web.StreamResponse:
    app = await visible_app(request)
    board = dashboard(request)
    if board.state is None:
        raise web.HTTPServiceUnavailable(text="the debug console needs a running server")
    try:
        flt = ConsoleFilter.from_query(request.query)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    viewer = board.state.console.subscribe(app.id, flt, max_per_second=board.state.settings.console_max_per_second)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    reported = 0
    try:
        await response.write(b": open\n\n")
        events = viewer.__aiter__()
        while True:
            try:
                event = await asyncio.wait_for(events.__anext__(), KEEPALIVE)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            except StopAsyncIteration:
                break
            data = event.to_dict()
            if viewer.dropped != reported:  # the server-side speed limit skipped some: say how many
                reported = viewer.dropped
                data["dropped_total"] = reported
            await response.write(b"data: " + orjson.dumps(data, default=str) + b"\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        viewer.close()
    return response


def _problems(channel: str, event: str, data: str) -> dict[str, str]:
    problems = {}
    if not channel:
        problems["channel"] = "Enter a channel name."
    elif len(channel) > 200 or any(ch.isspace() for ch in channel):
        problems["channel"] = "A channel name has no spaces and at most 200 characters."
    if not event:
        problems["event"] = "Enter an event name."
    elif event.startswith("pusher:") or event.startswith("pusher_internal:"):
        problems["event"] = "Event names starting with pusher: are reserved for the protocol."
    elif len(event) > 200:
        problems["event"] = "An event name has at most 200 characters."
    if len(data.encode()) > 1_000_000:
        problems["data"] = "The data is too large."
    return problems


async def create_event(request: web.Request) -> web.Response:
    app = await visible_app(request)
    board = dashboard(request)
    form = await request.post()
    channel, event = str(form.get("channel", "")).strip(), str(form.get("event", "")).strip()
    data = str(form.get("data", ""))
    problems = _problems(channel, event, data)
    if problems:
        return web.json_response({"ok": False, "errors": problems}, status=400)
    # Sign with the secret the data plane holds right now (its cache may lag a rotation made elsewhere).
    serving = await board.state.apps.by_id(app.id) if board.state is not None else None
    secret = (serving or app).secret
    body = json.dumps({"name": event, "channel": channel, "data": data}).encode()
    path = f"/apps/{app.id}/events"
    params = [("auth_key", app.key), ("auth_timestamp", str(int(time.time()))), ("auth_version", "1.0"),
              ("body_md5", hashlib.md5(body).hexdigest())]
    params.append(("auth_signature", sign_request(secret, "POST", path, params)))
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
                board.data_url + path, params=params, data=body, ssl=False,
                headers={"Content-Type": "application/json"}) as answer:
            text = await answer.text()
            status = answer.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return web.json_response({"ok": False, "errors": {"form": f"The data plane did not answer: {exc}"}},
                                 status=502)
    result: dict[str, Any] = {"ok": status == 200, "status": status, "answer": text[:2000]}
    if status != 200:
        result["errors"] = {"form": f"The HTTP API refused the publish ({status}): {text[:300]}"}
    return web.json_response(result, status=200 if status == 200 else 400)


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/apps/{app}/stats.json", stats_json)
    router.add_get("/apps/{app}/console", console_page)
    router.add_get("/apps/{app}/console/stream", console_stream)
    router.add_post("/apps/{app}/events", create_event)
