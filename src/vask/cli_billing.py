"""`vask accounts|plans|usage|bill|calc`: accounts, plans, metered usage and statements.

Registered on the main group by ``vask.cli``. Expected failures end with a one-line message and exit
status 1, as the other commands do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from vask.apps.base import AppStoreError
from vask.billing import calc as fanout
from vask.billing.base import BillingStore
from vask.billing.plans import (
    DEFAULT_ACCOUNT_ID,
    DEFAULT_PLANS,
    FREE,
    Account,
    AccountExists,
    AccountNotFound,
    Plan,
    PlanNotFound,
    month_of,
    parse_month,
)
from vask.billing.statement import AccountUsage, account_usage, money
from vask.factory import open_billing_store

if TYPE_CHECKING:
    from vask.cli import CliContext

_NONE_WORDS = {"none", "null", "unlimited"}


@contextmanager
def billing_store(obj: CliContext, create: bool = False) -> Iterator[BillingStore]:
    """Open the billing tables of the configured store; domain and store errors become clean CLI errors.

    Without ``create`` a missing SQLite store is an error rather than a new empty file (CliContext.check_store).
    """
    settings = obj.settings()
    obj.check_store(settings, create)
    try:
        store = open_billing_store(settings)
    except AppStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    if settings.store_kind == "memory":
        click.echo("warning: the memory:// store keeps nothing; this change is lost on exit", err=True)
    try:
        yield store
    except (AppStoreError, AccountExists, AccountNotFound, PlanNotFound) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


def account_option(obj: CliContext, account_id: str | None) -> str | None:
    """The account_id to store for `apps create/update --account` (None for the default account).

    The account must exist, so a typo does not silently leave an app unbilled.
    """
    if account_id is None or account_id == DEFAULT_ACCOUNT_ID:
        return None
    with billing_store(obj) as store:
        if store.get_account(account_id) is None:
            raise click.ClickException(f"no account with id {account_id!r} (create it with `vask accounts create`)")
    return account_id


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _limit(value: int | None) -> str:
    return "unlimited" if value is None else f"{value:,}"


def _count(value: int | None, noun: str) -> str:
    """'1 connection', '3 connections', 'unlimited connections'."""
    return f"{_limit(value)} {noun}{'' if value == 1 else 's'}"


def _month_option(month: str | None) -> tuple[str, str]:
    current = month_of(time.time())
    if month is None:
        return current, current
    try:
        parse_month(month)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--month") from exc
    return month, current


# -------------------------------------------------------------------------------------------- accounts


@click.group()
def accounts() -> None:
    """Create and manage billing accounts: an account owns apps and is on a plan.

    Apps without an account belong to the built-in account `default` (plan `unlimited`). Attach an app with
    `vask apps create|update --account ID`. Plan changes reach a running server within a few seconds.
    """


def _print_account(account: Account, plan: Plan | None, apps: list[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**account.model_dump(mode="json"),
                               "plan_details": plan.model_dump(mode="json") if plan else None, "apps": apps},
                              indent=2))
        return
    click.echo(f"id:       {account.id}")
    click.echo(f"name:     {account.name}")
    click.echo(f"plan:     {account.plan}" + ("" if plan else "  (missing plan!)"))
    if plan is not None:
        click.echo(f"  fee {money(plan.monthly_fee_cents)}/month, {_count(plan.included_broadcasts, 'broadcast')}, "
                   f"{_count(plan.max_connections, 'concurrent connection')}")
    click.echo(f"apps:     {', '.join(apps) if apps else '(none)'}")


@accounts.command("create")
@click.option("--id", "account_id", required=True, help="Account id (letters, digits, . _ -).")
@click.option("--name", default="", help="A label for people.")
@click.option("--plan", default=FREE, show_default=True, help="Plan name (see `vask plans list`).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def accounts_create(obj: CliContext, account_id: str, name: str, plan: str, as_json: bool) -> None:
    """Create an account."""
    try:
        account = Account(id=account_id, name=name, plan=plan)
    except ValidationError as exc:
        raise click.BadParameter("use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or "
                                 "digit", param_hint="--id/--plan") from exc
    with billing_store(obj, create=True) as store:
        store.create_account(account)
        details = store.get_plan(plan)
    _print_account(account, details, [], as_json)


@accounts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def accounts_list(obj: CliContext, as_json: bool) -> None:
    """List accounts and their plans."""
    with billing_store(obj) as store:
        found = store.list_accounts()
    if as_json:
        click.echo(json.dumps([a.model_dump(mode="json") for a in found], indent=2))
        return
    _table([("ID", "PLAN", "NAME"), *((a.id, a.plan, a.name) for a in found)])


@accounts.command("show")
@click.argument("account_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def accounts_show(obj: CliContext, account_id: str, as_json: bool) -> None:
    """Show an account, its plan and its apps."""
    with billing_store(obj) as store:
        account = store.get_account(account_id)
        if account is None:
            raise click.ClickException(f"no account with id {account_id!r} (see `vask accounts list`)")
        plan = store.get_plan(account.plan)
    with obj.store() as apps:
        owned = [a.id for a in apps.list() if (a.account_id or DEFAULT_ACCOUNT_ID) == account_id]
    _print_account(account, plan, owned, as_json)


@accounts.command("set-plan")
@click.argument("account_id", metavar="ID")
@click.argument("plan", metavar="PLAN")
@click.pass_obj
def accounts_set_plan(obj: CliContext, account_id: str, plan: str) -> None:
    """Move an account to another plan (the current month is billed on the plan it ends on)."""
    with billing_store(obj) as store:
        account = store.get_account(account_id)
        if account is None:
            raise click.ClickException(f"no account with id {account_id!r} (see `vask accounts list`)")
        store.update_account(account.model_copy(update={"plan": plan}))
    click.echo(f"Account {account_id} is on plan {plan}.")


# ----------------------------------------------------------------------------------------------- plans


@click.group()
def plans() -> None:
    """List and edit plans (the defaults are free, pro and unlimited)."""


def _dollars_to_cents(value: str, name: str) -> int:
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise click.BadParameter(f"expected an amount in dollars, e.g. 10 or 1.50 (got {value!r})",
                                 param_hint=name) from exc
    cents = amount * 100
    if amount < 0 or cents != cents.to_integral_value():
        raise click.BadParameter("must be 0 or more, in whole cents", param_hint=name)
    return int(cents)


def _count_or_none(value: str, name: str) -> int | None:
    if value.strip().lower() in _NONE_WORDS:
        return None
    try:
        number = int(value.replace(",", "").replace("_", ""))
    except ValueError as exc:
        raise click.BadParameter(f"expected a whole number or 'unlimited' (got {value!r})", param_hint=name) from exc
    if number < 0:
        raise click.BadParameter("must be 0 or more", param_hint=name)
    return number


@plans.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def plans_list(obj: CliContext, as_json: bool) -> None:
    """List plans."""
    with billing_store(obj) as store:
        found = store.list_plans()
    if as_json:
        click.echo(json.dumps([p.model_dump(mode="json") for p in found], indent=2))
        return
    rows = [("PLAN", "FEE/MONTH", "BROADCASTS", "CONNECTIONS", "OVERAGE/MILLION")]
    rows += [(p.name, money(p.monthly_fee_cents), _limit(p.included_broadcasts), _limit(p.max_connections),
              "-" if p.included_broadcasts is None else "hard quota" if p.overage_cents_per_million is None
              else money(p.overage_cents_per_million)) for p in found]
    _table(rows)


@plans.command("set")
@click.argument("name")
@click.option("--fee", metavar="DOLLARS", help="Monthly fee, e.g. 10 or 9.99 [new plan: 0].")
@click.option("--broadcasts", metavar="N|unlimited", help="Broadcasts included per month [new plan: unlimited].")
@click.option("--connections", metavar="N|unlimited",
              help="Concurrent connections across the account's apps [new plan: unlimited].")
@click.option("--overage-per-million", metavar="DOLLARS|none",
              help="Price per million broadcasts above the included ones; 'none' makes the quota hard "
                   "(publishes refused with 403) [new plan: none].")
@click.option("--description", help="A label for people.")
@click.option("--create", "create", is_flag=True,
              help="Create the plan when it does not exist (without it, a typo in NAME is an error).")
@click.pass_obj
def plans_set(obj: CliContext, name: str, fee: str | None, broadcasts: str | None, connections: str | None,
              overage_per_million: str | None, description: str | None, create: bool) -> None:
    """Change the given fields of a plan; with --create, create it if it does not exist."""
    changes: dict[str, Any] = {}
    if fee is not None:
        changes["monthly_fee_cents"] = _dollars_to_cents(fee, "--fee")
    if broadcasts is not None:
        changes["included_broadcasts"] = _count_or_none(broadcasts, "--broadcasts")
    if connections is not None:
        changes["max_connections"] = _count_or_none(connections, "--connections")
    if overage_per_million is not None:
        changes["overage_cents_per_million"] = (
            None if overage_per_million.strip().lower() in _NONE_WORDS
            else _dollars_to_cents(overage_per_million, "--overage-per-million"))
    if description is not None:
        changes["description"] = description
    with billing_store(obj, create=True) as store:
        current = store.get_plan(name)
        if current is None and not create:
            known = ", ".join(plan.name for plan in store.list_plans())
            raise click.ClickException(f"no plan named {name!r} (known: {known}); add --create to create it")
        base = current.model_dump() if current is not None else {"name": name}
        try:
            plan = Plan.model_validate({**base, **changes})
        except ValidationError as exc:
            raise click.BadParameter("plan names are 1 to 32 letters, digits, '.', '_' or '-'",
                                     param_hint="NAME") from exc
        store.put_plan(plan)
    click.echo(f"Plan {plan.name} {'updated' if current else 'created'}: fee {money(plan.monthly_fee_cents)}/month, "
               f"{_count(plan.included_broadcasts, 'broadcast')}, {_count(plan.max_connections, 'connection')}, "
               + ("hard quota" if plan.overage_cents_per_million is None
                  else f"{money(plan.overage_cents_per_million)} per extra million"))


# ---------------------------------------------------------------------------------------- usage, bill


def _usage_rows(report: list[AccountUsage], fanout_column: bool) -> list[tuple[str, ...]]:
    header = ("ACCOUNT", "APP", "BROADCASTS", "DELIVERIES", "PEAK CONNECTIONS")
    rows = [header + (("PER-MESSAGE UNITS", "RATIO") if fanout_column else ())]
    for usage in report:
        entries = [(row.app_id, row.broadcasts, row.deliveries, row.peak_connections) for row in usage.apps]
        entries.append(("(all apps)", usage.broadcasts, usage.deliveries, usage.peak_connections))
        for app, sent, delivered, peak in entries:
            row: tuple[str, ...] = (usage.account.id, app, f"{sent:,}", f"{delivered:,}", f"{peak:,}")
            if fanout_column:
                comparison = fanout.from_usage(sent, delivered)
                row += (f"{comparison.messages:,}", f"{comparison.ratio:.2f}x")
            rows.append(row)
    return rows


@click.command()
@click.option("--account", "account_id", metavar="ID", help="Only this account.")
@click.option("--app", "app_id", metavar="ID", help="Only this app.")
@click.option("--month", metavar="YYYY-MM", help="Calendar month (UTC) [default: the current month].")
@click.option("--fanout", is_flag=True,
              help="Compare with a per-message provider's count (1 per publish + 1 per delivered copy).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def usage(obj: CliContext, account_id: str | None, app_id: str | None, month: str | None, fanout: bool,
          as_json: bool) -> None:
    """Metered usage per account and app: broadcasts, delivered copies, peak concurrent connections.

    Read from the store, which a running server writes every usage_flush_interval (1 s by default).
    """
    month, current = _month_option(month)
    with billing_store(obj) as store:
        report = account_usage(store, month, current, account_id=account_id, app_id=app_id)
    if as_json:
        click.echo(json.dumps({"month": month, "accounts": [u.to_dict(fanout=fanout) for u in report]}, indent=2))
        return
    click.echo(f"Usage in {month} (UTC)")
    if not report:
        click.echo("No usage recorded.")
        return
    _table(_usage_rows(report, fanout))
    for usage_row in report:
        reached = {kind: level for kind, level in usage_row.warnings().items() if level}
        if reached:
            click.echo(f"warning: account {usage_row.account.id} reached " + ", ".join(
                f"{level}% of its {kind} quota" for kind, level in reached.items()))


@click.command()
@click.option("--account", "account_id", required=True, metavar="ID", help="The account to bill.")
@click.option("--month", metavar="YYYY-MM", help="Calendar month (UTC) [default: the current month, so far].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def bill(obj: CliContext, account_id: str, month: str | None, as_json: bool) -> None:
    """Print an account's statement: plan fee, included and used broadcasts, overage, peak connections, total."""
    month, current = _month_option(month)
    with billing_store(obj) as store:
        (report,) = account_usage(store, month, current, account_id=account_id)
    statement = report.statement()
    if statement is None:
        raise click.ClickException(f"account {account_id} is on plan {report.account.plan!r}, which does not exist")
    click.echo(json.dumps(statement.to_dict(), indent=2) if as_json else statement.render())


@click.command("calc")
@click.option("--broadcasts", required=True, type=click.IntRange(min=0), help="Publishes per month.")
@click.option("--subscribers", required=True, type=click.IntRange(min=0), help="Subscribers each one reaches.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def calc(obj: CliContext, broadcasts: int, subscribers: int, as_json: bool) -> None:
    """Broadcasts billed by Vask vs messages billed per delivered copy, for a fan-out factor."""
    comparison = fanout.compare(broadcasts, subscribers)
    settings = obj.settings()
    path = settings.sqlite_path
    prices: list[dict[str, Any]] = []
    if settings.store_kind == "memory" or (path is not None and not path.exists()):
        prices = fanout.plan_prices(DEFAULT_PLANS, broadcasts)  # no store to read (and none to create)
    else:
        try:
            with billing_store(obj) as store:
                prices = fanout.plan_prices(store.list_plans(), broadcasts)
        except click.ClickException:  # unreachable store: the comparison itself needs none
            pass
    if as_json:
        click.echo(json.dumps({**comparison.to_dict(), "plans": prices}, indent=2))
        return
    click.echo(fanout.render(comparison, prices))


COMMANDS = (accounts, plans, usage, bill, calc)
