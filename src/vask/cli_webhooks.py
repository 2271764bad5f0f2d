"""`vask apps webhooks add|list|remove`: an app's webhook targets (stored in its settings).

Registered under `vask apps` by ``vask.cli``. A running server picks changes up within its app_cache_ttl.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from pydantic import ValidationError

from vask.apps.base import WEBHOOK_EVENT_TYPES, App, AppSettings, AppStore, WebhookTarget
from vask.masking import MASK

if TYPE_CHECKING:
    from vask.cli import CliContext


def _get(store: AppStore, app_id: str) -> App:
    app = store.get_by_id(app_id)
    if app is None:
        raise click.ClickException(f"no app with id {app_id!r} (see `vask apps list`)")
    return app


def _headers(values: tuple[str, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"expected 'Name: value', got {value!r}", param_hint="--header")
        headers[name.strip()] = text.strip()
    return headers


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'target'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())


def _private_warning(obj: CliContext, url: str) -> str | None:
    """A warning when the server will refuse this URL as it is configured (literal addresses and localhost
    only: names are resolved, and checked, by the server when it sends)."""
    settings = obj.settings()
    host = (urlsplit(url).hostname or "").lower()
    if settings.webhook_require_https and not url.lower().startswith("https://"):
        return "webhook_require_https is on: the server will refuse this http:// URL"
    if settings.webhook_allow_private:
        return None
    from vask.webhooks.ssrf import refusal  # aiohttp loads only when needed

    try:
        reason = "loopback" if host == "localhost" or host.endswith(".localhost") else refusal(host)
    except ValueError:
        return None  # a name
    if reason is None:
        return None
    return (f"{host} is {reason}: the server refuses such webhook URLs unless webhook_allow_private is set "
            "(VASK_WEBHOOK_ALLOW_PRIVATE=true)")


def _target_dict(target: WebhookTarget, *, mask: bool) -> dict[str, Any]:
    data = target.model_dump(mode="json")
    if mask:
        data["headers"] = {name: MASK for name in target.headers}
    return data


@click.group("webhooks")
def webhooks() -> None:
    """An app's webhook targets: where Pusher-format webhooks are POSTed, and which ones.

    Event types: channel_occupied, channel_vacated, member_added, member_removed, client_event, cache_miss,
    subscription_count (the last only when the app has subscription_count_events on).
    """


@webhooks.command("add")
@click.argument("app_id", metavar="APP_ID")
@click.argument("url")
@click.option("--event", "event_types", multiple=True, type=click.Choice(WEBHOOK_EVENT_TYPES),
              help="Send only this event type (repeatable) [default: all].")
@click.option("--prefix", help="Only channels whose name starts with this.")
@click.option("--suffix", help="Only channels whose name ends with this.")
@click.option("--header", "headers", multiple=True, metavar="'NAME: VALUE'",
              help="Extra request header (repeatable), e.g. an access token for the receiver.")
@click.option("--batch/--no-batch", default=False,
              help="Send events that happen close together in one request (at most webhook_batch_max).")
@click.option("--batch-window", type=click.FloatRange(min=0, min_open=True, max=10), metavar="SECONDS",
              help="How long a batch collects events [default: the server's webhook_batch_window, 0.05].")
@click.option("--json", "as_json", is_flag=True, help="Print the new target as JSON.")
@click.pass_obj
def webhooks_add(obj: CliContext, app_id: str, url: str, event_types: tuple[str, ...], prefix: str | None,
                 suffix: str | None, headers: tuple[str, ...], batch: bool, batch_window: float | None,
                 as_json: bool) -> None:
    """Add a webhook target to an app."""
    try:
        target = WebhookTarget(url=url, event_types=list(event_types), channel_prefix=prefix or None,
                               channel_suffix=suffix or None, headers=_headers(headers), batch=batch,
                               batch_window=batch_window)
    except ValidationError as exc:
        raise click.UsageError(f"invalid webhook target: {_describe(exc)}") from exc
    with obj.store() as store:
        app = _get(store, app_id)
        if any(existing.url == target.url for existing in app.settings.webhooks):
            raise click.ClickException(f"app {app_id} already has a webhook to {target.url} "
                                       "(remove it first to change it)")
        settings = AppSettings.model_validate({**app.settings.model_dump(),
                                               "webhooks": [*app.settings.webhooks, target]})
        store.update(app.model_copy(update={"settings": settings}))
    warning = _private_warning(obj, target.url)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(_target_dict(target, mask=True), indent=2))
    else:
        click.echo(f"Added webhook {len(settings.webhooks)} of app {app_id}: {target.url}")


@webhooks.command("list")
@click.argument("app_id", metavar="APP_ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (header values masked).")
@click.pass_obj
def webhooks_list(obj: CliContext, app_id: str, as_json: bool) -> None:
    """List an app's webhook targets, numbered for `remove`."""
    with obj.store() as store:
        app = _get(store, app_id)
    targets = app.settings.webhooks
    if as_json:
        click.echo(json.dumps([_target_dict(t, mask=True) for t in targets], indent=2))
        return
    if not targets:
        click.echo(f"App {app_id} has no webhooks. Add one with `vask apps webhooks add {app_id} URL`.")
        return
    rows = [("#", "URL", "EVENTS", "CHANNELS", "BATCH", "HEADERS")]
    for number, t in enumerate(targets, 1):
        channels = " ".join(part for part in (f"{t.channel_prefix}*" if t.channel_prefix else "",
                                              f"*{t.channel_suffix}" if t.channel_suffix else "") if part)
        batch = "no" if not t.batch else (f"{t.batch_window:g} s" if t.batch_window else "yes")
        rows.append((str(number), t.url, ",".join(t.event_types) or "all", channels or "all", batch,
                     ",".join(t.headers) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@webhooks.command("remove")
@click.argument("app_id", metavar="APP_ID")
@click.argument("target", metavar="NUMBER|URL")
@click.pass_obj
def webhooks_remove(obj: CliContext, app_id: str, target: str) -> None:
    """Remove a webhook target, by its number in `list` or its URL."""
    with obj.store() as store:
        app = _get(store, app_id)
        kept = list(app.settings.webhooks)
        if target.isdigit() and 1 <= int(target) <= len(kept):
            removed = kept.pop(int(target) - 1)
        else:
            matches = [i for i, t in enumerate(kept) if t.url == target]
            if not matches:
                raise click.ClickException(f"app {app_id} has no webhook {target!r} (see `vask apps webhooks "
                                           f"list {app_id}`)")
            removed = kept.pop(matches[0])
        settings = app.settings.model_copy(update={"webhooks": kept})
        store.update(app.model_copy(update={"settings": settings}))
    click.echo(f"Removed webhook {removed.url} from app {app_id}.")
