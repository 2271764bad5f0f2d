"""Signing up, signing in (rate-limited), the one-time operator login, invites, signing out."""

from __future__ import annotations

import re
import secrets

from aiohttp import web

from vask.billing.plans import FREE, Account, AccountExists
from vask.dashboard import security
from vask.dashboard.context import SESSION, USER, dashboard, user_of
from vask.dashboard.html import csrf_field, e, errors_box, field, notice, page
from vask.dashboard.server import COOKIE, start_session
from vask.dashboard.users import EMAIL, Session, User, UserExists, digest, normal_email

_SLUG = re.compile(r"[^a-z0-9]+")


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/apps" if USER in request else "/login")


def _login_form(request: web.Request, email: str = "", errors: tuple[str, ...] = (), status: int = 200,
                message: str | None = None) -> web.Response:
    board = dashboard(request)
    signup = '<p class="muted">No account yet? <a href="/signup">Sign up</a></p>' if board.signup_enabled else ""
    body = f"""<div class="card narrow auth"><h1>Sign in</h1>{notice(message)}{errors_box(errors)}
<form method="post" action="/login" novalidate>{csrf_field(request)}
{field("Email", "email", email, kind="email", attrs='autocomplete="username" required')}
{field("Password", "password", kind="password", attrs='autocomplete="current-password" required')}
<button class="primary" type="submit">Sign in</button></form>{signup}</div>"""
    return page(request, "Sign in", body, status=status)


async def login_page(request: web.Request) -> web.Response:
    return _login_form(request, message="Signed out." if "out" in request.query else None)


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


async def login(request: web.Request) -> web.StreamResponse:
    board = dashboard(request)
    form = await request.post()
    email = normal_email(str(form.get("email", "")))
    password = str(form.get("password", ""))
    keys = (f"ip:{_client(request)}", f"email:{email}")
    wait = board.limiter.retry_after(*keys)
    if wait > 0:
        response = _login_form(request, email, (f"Too many failed sign-ins. Try again in {int(wait) + 1} seconds.",),
                               status=429)
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    if not email or not password:
        return _login_form(request, email, ("Enter your email and your password.",), status=400)
    user = await board.run(board.users.user_by_email, email)
    ok = await board.run(security.check_password, user.password_hash if user else "", password)
    if user is None or not ok:
        board.limiter.failed(*keys)
        return _login_form(request, email, ("Wrong email or password.",), status=401)
    board.limiter.succeeded(keys[1])
    return await start_session(request, user)


def _signup_form(request: web.Request, values: dict[str, str], errors: dict[str, str], status: int = 200,
                 invite: str | None = None) -> web.Response:
    action = f"/invite/{e(invite)}" if invite else "/signup"
    account = "" if invite else field("Company or project name", "account", values.get("account", ""),
                                      hint="Your apps, usage and bill belong to this account.",
                                      error=errors.get("account"))
    title = "Join your team" if invite else "Create your account"
    email_attrs = 'autocomplete="username" required' + (" readonly" if invite else "")
    body = f"""<div class="card narrow auth"><h1>{title}</h1>{errors_box(errors.get("form", "").split("|") if
    errors.get("form") else ())}
<form method="post" action="{action}" novalidate>{csrf_field(request)}{account}
{field("Email", "email", values.get("email", ""), kind="email", attrs=email_attrs, error=errors.get("email"))}
{field("Password", "password", kind="password", hint=f"At least {security.MIN_PASSWORD} characters.",
       attrs='autocomplete="new-password" required', error=errors.get("password"))}
<button class="primary" type="submit">{"Join" if invite else "Sign up"}</button></form>
<p class="muted">Already have an account? <a href="/login">Sign in</a></p></div>"""
    return page(request, title, body, status=status)


def _check(values: dict[str, str], need_account: bool) -> dict[str, str]:
    errors = {}
    if need_account and not values["account"].strip():
        errors["account"] = "Enter a name for your account."
    elif need_account and len(values["account"]) > 100:
        errors["account"] = "The account name may have at most 100 characters."
    if not EMAIL.match(values["email"]):
        errors["email"] = "Enter a valid email address, like you@example.com."
    problem = security.password_problem(values["password"], values["email"])
    if problem:
        errors["password"] = problem
    return errors


async def signup_page(request: web.Request) -> web.Response:
    if not dashboard(request).signup_enabled:
        raise web.HTTPNotFound(text="Sign-up is closed on this server; ask an operator for an invite.")
    return _signup_form(request, {}, {})


def _account_id(name: str) -> str:
    slug = _SLUG.sub("-", name.lower()).strip("-")[:40] or "account"
    return f"{slug}-{secrets.token_hex(3)}"


async def signup(request: web.Request) -> web.StreamResponse:
    board = dashboard(request)
    if not board.signup_enabled:
        raise web.HTTPNotFound(text="Sign-up is closed on this server; ask an operator for an invite.")
    form = await request.post()
    values = {k: str(form.get(k, "")) for k in ("account", "email", "password")}
    values["email"] = normal_email(values["email"])
    errors = _check(values, need_account=True)
    if not errors and await board.run(board.users.user_by_email, values["email"]) is not None:
        errors["email"] = "An account with this email already exists: sign in instead."
    if errors:
        return _signup_form(request, values, errors, status=400)
    name = values["account"].strip()
    for _ in range(5):
        try:
            account = await board.run(board.billing.create_account, Account(id=_account_id(name), name=name,
                                                                            plan=FREE))
            break
        except AccountExists:
            continue
    else:
        raise RuntimeError("could not pick a free account id")
    password_hash = await board.run(security.hash_password, values["password"])
    user = User(secrets.token_hex(8), values["email"], password_hash, "owner", account.id, board.clock())
    try:
        user = await board.run(board.users.create_user, user)
    except UserExists:
        return _signup_form(request, values, {"email": "An account with this email already exists."}, status=400)
    return await start_session(request, user)


async def invite_page(request: web.Request) -> web.Response:
    board = dashboard(request)
    invite = await board.run(board.users.get_invite, digest(request.match_info["token"]), board.clock())
    if invite is None:
        raise web.HTTPNotFound(text="This invite link is not valid: it was used already, expired, or is mistyped.")
    return _signup_form(request, {"email": invite.email}, {}, invite=request.match_info["token"])


async def accept_invite(request: web.Request) -> web.StreamResponse:
    board = dashboard(request)
    token = request.match_info["token"]
    form = await request.post()
    values = {"account": "", "email": normal_email(str(form.get("email", ""))),
              "password": str(form.get("password", ""))}
    errors = _check(values, need_account=False)
    if errors:
        return _signup_form(request, values, errors, status=400, invite=token)
    invite = await board.run(board.users.take_invite, digest(token), board.clock())
    if invite is None:
        raise web.HTTPNotFound(text="This invite link is not valid: it was used already, expired, or is mistyped.")
    password_hash = await board.run(security.hash_password, values["password"])
    user = User(secrets.token_hex(8), invite.email, password_hash, "member", invite.account_id, board.clock())
    try:
        user = await board.run(board.users.create_user, user)
    except UserExists:
        return _signup_form(request, values, {"email": "A user with this email already exists: sign in."},
                            status=400, invite=token)
    return await start_session(request, user)


async def once(request: web.Request) -> web.StreamResponse:
    """The one-time operator link printed by `vask serve`."""
    board = dashboard(request)
    if not board.once.take(request.query.get("token", "")):
        return _login_form(request, errors=("This one-time login link was used already or has expired. Restart "
                                            "`vask serve` for a new one, or sign in with a password.",), status=403)
    user = await board.run(board.users.user_by_email, "operator@localhost")
    if user is None:
        user = await board.run(board.users.create_user, User(secrets.token_hex(8), "operator@localhost", "",
                                                             "operator", None, board.clock()))
    return await start_session(request, user)


async def logout(request: web.Request) -> web.StreamResponse:
    board = dashboard(request)
    user_of(request)
    session = request.get(SESSION)
    if isinstance(session, Session):
        await board.run(board.users.delete_session, session.token_hash)
    response = web.Response(status=303, headers={"Location": "/login?out=1"})
    response.del_cookie(COOKIE, path="/")
    return response


def register(router: web.UrlDispatcher) -> None:
    router.add_get("/", index)
    router.add_get("/login", login_page)
    router.add_post("/login", login)
    router.add_get("/login/once", once)
    router.add_get("/signup", signup_page)
    router.add_post("/signup", signup)
    router.add_get("/invite/{token}", invite_page)
    router.add_post("/invite/{token}", accept_invite)
    router.add_post("/logout", logout)
