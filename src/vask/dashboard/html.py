"""Server-rendered HTML: the page layout, escaping, forms and their error messages. No template engine:
small functions returning strings, every value through ``e()``."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

from aiohttp import web

from vask.apps.base import App
from vask.dashboard.context import CSRF, SESSION, USER, session_of
from vask.dashboard.users import User

e = html.escape


def csrf_field(request: web.Request) -> str:
    session = session_of(request)
    value = session.csrf if session is not None else request.get(CSRF, "")
    return f'<input type="hidden" name="csrf" value="{e(str(value))}">'


def errors_box(errors: Iterable[str]) -> str:
    items = "".join(f"<li>{e(message)}</li>" for message in errors)
    return f'<div class="alert alert-error" role="alert"><ul>{items}</ul></div>' if items else ""


def notice(message: str | None, kind: str = "ok") -> str:
    return f'<div class="alert alert-{kind}" role="status">{e(message)}</div>' if message else ""


def field(label: str, name: str, value: str = "", *, kind: str = "text", hint: str = "", error: str | None = None,
          attrs: str = "") -> str:
    invalid = ' aria-invalid="true"' if error else ""
    shown = f'<span class="field-error">{e(error)}</span>' if error else ""
    help_text = f'<span class="hint">{e(hint)}</span>' if hint else ""
    return (f'<label class="field"><span class="label">{e(label)}</span>'
            f'<input type="{kind}" name="{e(name)}" value="{e(value)}"{invalid} {attrs}>{help_text}{shown}</label>')


def toggle(label: str, name: str, on: bool, hint: str = "") -> str:
    checked = " checked" if on else ""
    return (f'<label class="toggle"><input type="checkbox" name="{e(name)}" value="1"{checked}>'
            f'<span class="switch"></span><span><b>{e(label)}</b><br><span class="hint">{e(hint)}</span></span>'
            "</label>")


def table(headers: list[str], rows: Iterable[Iterable[str]], empty: str = "Nothing yet.") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="muted">{e(empty)}</td></tr>'
    return f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


APP_TABS = (("", "Overview"), ("/keys", "App keys"), ("/settings", "App settings"), ("/webhooks", "Webhooks"),
            ("/console", "Debug console"))


def app_header(app: App, active: str) -> str:
    tabs = "".join(f'<a class="tab{" active" if suffix == active else ""}" href="/apps/{e(app.id)}{suffix}">'
                   f'{e(name)}</a>' for suffix, name in APP_TABS)
    state = '<span class="badge ok">enabled</span>' if app.enabled else '<span class="badge off">disabled</span>'
    return (f'<div class="app-head"><h1>{e(app.name or app.id)} {state}</h1>'
            f'<div class="muted">app id <code>{e(app.id)}</code></div></div><nav class="tabs">{tabs}</nav>')


def page(request: web.Request, title: str, body: str, *, status: int = 200, script: str | None = None,
         data: Mapping[str, str] | None = None) -> web.Response:
    user = request.get(USER)
    nav = ""
    top = ""
    if isinstance(user, User):
        links = [("/apps", "Apps"), ("/account", "Usage & plan"), ("/calculator", "Fan-out calculator")]
        if user.is_operator:
            links.append(("/accounts", "Accounts"))
        path = request.path
        nav = "".join(f'<a href="{href}"{" class=active" if path.startswith(href) else ""}>{name}</a>'
                      for href, name in links)
        who = "operator" if user.is_operator else f"{user.role} of {user.account_id}"
        top = (f'<div class="who"><span>{e(user.email)} <span class="muted">({e(who)})</span></span>'
               f'<form method="post" action="/logout">{csrf_field(request)}'
               '<button class="link">Sign out</button></form></div>')
    attrs = "".join(f' data-{e(k)}="{e(v)}"' for k, v in (data or {}).items())
    session = request.get(SESSION)
    csrf = e(session.csrf) if session is not None else ""
    tag = f'<script src="/static/{script}" defer></script>' if script else ""
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf" content="{csrf}">
<title>{e(title)} · Vask</title><link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/dashboard.js" defer></script>{tag}</head>
<body{attrs}><header class="top"><a class="brand" href="/apps"><span class="logo">V</span> Vask</a>
<nav class="main">{nav}</nav>{top}</header>
<main>{body}</main></body></html>"""
    return web.Response(text=text, content_type="text/html", status=status)
