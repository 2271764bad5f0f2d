"""Usage against the plan (80%/100% warnings), the fan-out tax panel, monthly statements, members and
invites, the calculator, and the operator's list of accounts."""

from __future__ import annotations

import time

from aiohttp import web

from vask.billing import calc
from vask.billing.plans import DEFAULT_ACCOUNT_ID, AccountNotFound, month_of, parse_month
from vask.billing.statement import account_usage, money
from vask.dashboard import security
from vask.dashboard.context import dashboard, user_of
from vask.dashboard.html import csrf_field, e, errors_box, field, notice, page, table
from vask.dashboard.users import EMAIL, Invite, digest, normal_email

INVITE_TTL = 7 * 24 * 3600.0
# What a per-message provider charges per million messages above its plans, for the comparison only: the
# figure the page shows is labelled as an estimate with this rate, and the message count is exact.
PER_MESSAGE_CENTS_PER_MILLION = 100


def _months_back(current: str, count: int) -> list[str]:
    year, number = parse_month(current)
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{number:02d}")
        year, number = (year - 1, 12) if number == 1 else (year, number - 1)
    return out


def _meter(used: int, limit: int | None, label: str) -> str:
    if limit is None:
        return f'<div class="meter"><div class="meter-label"><b>{used:,}</b> {e(label)} · no limit</div></div>'
    percent = min(100.0, used * 100 / limit) if limit else 100.0
    level = "danger" if used >= limit else "warn" if used * 100 >= limit * 80 else "ok"
    return (f'<div class="meter {level}"><div class="meter-label"><b>{used:,}</b> of {limit:,} {e(label)} '
            f'({percent:.0f}%)</div><progress max="100" value="{percent:.1f}">{percent:.0f}%</progress></div>')


def _account_id(request: web.Request) -> str:
    user = user_of(request)
    if user.is_operator:
        return request.query.get("account") or DEFAULT_ACCOUNT_ID
    assert user.account_id is not None
    return user.account_id


async def account_page(request: web.Request, errors: tuple[str, ...] = (), message: str | None = None,
                       status: int = 200) -> web.Response:
    board = dashboard(request)
    user = user_of(request)
    account_id = _account_id(request)
    current = month_of(time.time())
    month = request.query.get("month") or current
    try:
        parse_month(month)
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from exc
    try:
        report = (await board.run(lambda: account_usage(board.billing, month, current, account_id=account_id)))[0]
    except AccountNotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from exc
    plan = report.plan
    warnings = report.warnings()
    alerts = ""
    for what, level in warnings.items():
        if level == 100:
            alerts += notice(f"You have used all of this month's {what} on the {report.account.plan} plan.", "error")
        elif level == 80:
            alerts += notice(f"You have used 80% of this month's {what} on the {report.account.plan} plan.", "warn")
    fan = calc.from_usage(report.broadcasts, report.deliveries)
    statement = report.statement()
    vask_bill = money(statement.total_cents) if statement is not None else "-"
    per_message = money(fan.messages * PER_MESSAGE_CENTS_PER_MILLION // 1_000_000)
    rows = []
    for past in _months_back(current, 6):
        found = (await board.run(lambda m=past: account_usage(board.billing, m, current, account_id=account_id)))[0]
        st = found.statement()
        rows.append((f'<a href="/account?month={past}&account={e(account_id)}">{past}</a>',
                     f"{found.broadcasts:,}", f"{found.deliveries:,}", f"{found.peak_connections:,}",
                     money(st.total_cents) if st else "-"))
    app_rows = [(f'<a href="/apps/{e(r.app_id)}">{e(r.app_id)}</a>', f"{r.broadcasts:,}", f"{r.deliveries:,}",
                 f"{r.peak_connections:,}") for r in report.apps]
    members = ""
    if not user.is_operator or account_id != DEFAULT_ACCOUNT_ID:
        people = await board.run(board.users.list_users, account_id)
        invites = await board.run(board.users.list_invites, account_id, board.clock())
        member_rows = [(e(p.email), e(p.role)) for p in people] + [(e(i.email), "invited") for i in invites]
        members = f"""<section class="card"><h2>Team</h2>{table(["Email", "Role"], member_rows)}
{errors_box(errors)}{notice(message)}
<form method="post" action="/account/invites?account={e(account_id)}" class="inline" novalidate>{csrf_field(request)}
{field("Invite by email", "email", kind="email", attrs='placeholder="teammate@example.com"')}
<button class="secondary" type="submit">Create invite link</button></form></section>"""
    limit = plan.included_broadcasts if plan else None
    body = f"""<div class="page-head"><h1>Usage &amp; plan</h1><span class="muted">{e(report.account.name)}
(<code>{e(account_id)}</code>) · {e(month)}</span></div>{alerts}
<div class="grid two"><section class="card"><h2>Plan: {e(report.account.plan)}</h2>
<p class="muted">{e(plan.description if plan else "This plan does not exist any more.")}</p>
{_meter(report.broadcasts, limit, "broadcasts this month")}
{_meter(report.peak_connections, plan.max_connections if plan else None, "peak concurrent connections")}
</section>
<section class="card fanout"><h2>The fan-out tax</h2><p class="muted">This month's real traffic, billed two ways.
</p><div class="compare"><div><span class="label">Vask bills</span><b>{fan.broadcasts:,}</b> broadcasts
<span class="price">{vask_bill}</span></div><div><span class="label">A per-message provider bills</span>
<b>{fan.messages:,}</b> messages<span class="price">~ {per_message}</span></div></div>
<p class="muted">Each broadcast reached {fan.fanout:.1f} subscribers on average: {fan.ratio:.1f} messages per
broadcast. Estimate at ${PER_MESSAGE_CENTS_PER_MILLION / 100:.2f} per million messages; such providers also count
client events and presence messages, which Vask does not bill.</p></section></div>
<section class="card"><h2>Apps this month</h2>{table(["App", "Broadcasts", "Deliveries", "Peak connections"],
                                                     app_rows, "No traffic this month.")}</section>
<section class="card"><h2>Monthly statements</h2>{table(["Month", "Broadcasts", "Deliveries", "Peak connections",
                                                         "Total"], rows)}</section>{members}"""
    return page(request, "Usage & plan", body, status=status)


async def usage(request: web.Request) -> web.Response:
    return await account_page(request)


async def invite(request: web.Request) -> web.Response:
    board = dashboard(request)
    user = user_of(request)
    account_id = _account_id(request)
    if not user.is_operator and user.role != "owner":
        raise web.HTTPForbidden(text="Only the account's owner can invite people.")
    email = normal_email(str((await request.post()).get("email", "")))
    if not EMAIL.match(email):
        return await account_page(request, ("Enter the email address of the person to invite.",), status=400)
    if await board.run(board.users.user_by_email, email) is not None:
        return await account_page(request, (f"{email} already has a dashboard login.",), status=400)
    value = security.token()
    await board.run(board.users.put_invite, Invite(digest(value), account_id, email, user.id,
                                                   board.clock() + INVITE_TTL))
    link = f"{request.scheme}://{request.host}/invite/{value}"
    return await account_page(request, message=f"Send this link to {email} (valid 7 days, once): {link}")


async def calculator(request: web.Request) -> web.Response:
    board = dashboard(request)
    user_of(request)
    broadcasts, subscribers = request.query.get("broadcasts", "1000000"), request.query.get("subscribers", "50")
    errors = []
    result = ""
    if not (broadcasts.isdigit() and len(broadcasts) < 16):
        errors.append("Broadcasts per month: enter a whole number, 0 or more.")
    if not (subscribers.isdigit() and len(subscribers) < 10):
        errors.append("Subscribers per broadcast: enter a whole number, 0 or more.")
    if not errors:
        comparison = calc.compare(int(broadcasts), int(subscribers))
        prices = calc.plan_prices(await board.run(board.billing.list_plans), int(broadcasts))
        price_rows = [(e(p["plan"]), e(p["price"] or "over its hard quota")) for p in prices]
        result = f"""<section class="card"><div class="compare"><div><span class="label">Vask bills</span>
<b>{comparison.broadcasts:,}</b> broadcasts</div><div><span class="label">A per-message provider bills</span>
<b>{comparison.messages:,}</b> messages</div></div><p class="muted">{comparison.ratio:,.0f}x as many billed units
(1 per publish + 1 per delivered copy).</p>{table(["Vask plan", "Monthly price"], price_rows)}</section>"""
    body = f"""<div class="page-head"><h1>Fan-out calculator</h1></div><section class="card">{errors_box(errors)}
<form method="get" action="/calculator" class="inline" novalidate>
{field("Broadcasts per month", "broadcasts", broadcasts, attrs='inputmode="numeric"')}
{field("Subscribers per broadcast", "subscribers", subscribers, attrs='inputmode="numeric"')}
<button class="primary" type="submit">Compare</button></form></section>{result}"""
    return page(request, "Fan-out calculator", body, status=400 if errors else 200)


async def accounts(request: web.Request) -> web.Response:
    board = dashboard(request)
    if not user_of(request).is_operator:
        raise web.HTTPForbidden(text="Only operators can list every account.")
    found = await board.run(board.billing.list_accounts)
    rows = [(f'<a href="/account?account={e(a.id)}">{e(a.id)}</a>', e(a.name), e(a.plan)) for a in found]
    body = f"""<div class="page-head"><h1>Accounts</h1></div><section class="card">
{table(["Account", "Name", "Plan"], rows)}</section>"""
    return page(request, "Accounts", body)


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/account", usage)
    router.add_post("/account/invites", invite)
    router.add_get("/calculator", calculator)
    router.add_get("/accounts", accounts)
