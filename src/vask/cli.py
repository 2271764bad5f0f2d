"""The `vask` command line: run the server, show the configuration, manage apps.

Expected failures (bad configuration, unreachable store, unknown app, duplicate key) end with a one-line
message and exit status 1 (2 for misused options), never with a traceback.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from vask import __version__
from vask.apps.base import App, AppExists, AppNotFound, AppSettings, AppStore, AppStoreError, new_app
from vask.apps.declared import NON_NUMERIC_WARNING, NUMERIC
from vask.billing.plans import DEFAULT_ACCOUNT_ID
from vask.cli_billing import COMMANDS as BILLING_COMMANDS
from vask.cli_billing import account_option
from vask.cli_deploy import checkconfig, config_reference, genconfig
from vask.cli_webhooks import webhooks as webhooks_group
from vask.config import ConfigError, Settings
from vask.factory import describe_store, open_store
from vask.masking import MASK

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliContext:
    """The group's options, applied when a command needs settings or the store."""

    config_path: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, **overrides: Any) -> Settings:
        try:
            return Settings.load(self.config_path, **{**self.overrides, **overrides})
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc

    def check_store(self, settings: Settings, create: bool) -> None:
        """A command that only reads (or changes what must exist) never creates an empty SQLite store: it would
        hide the real one (another --data-dir, another folder). One that creates says where it does."""
        path = settings.sqlite_path
        if path is None or path.exists():
            return
        if not create:
            raise click.ClickException(
                f"no app store at {path}: nothing was created there yet. Point --data-dir, --database-url "
                "(or VASK_DATA_DIR, VASK_DATABASE_URL, --config) at the store your server uses; "
                "`vask config show` prints the one in effect.")
        click.echo(f"Creating a new app store: {describe_store(settings)}", err=True)

    @contextmanager
    def store(self, create: bool = False) -> Iterator[AppStore]:
        """Open the configured store; store failures inside the block become clean CLI errors.

        Without ``create`` a missing SQLite store is an error rather than a new empty file.
        """
        settings = self.settings()
        self.check_store(settings, create)
        try:
            store = open_store(settings)
        except AppStoreError as exc:
            raise click.ClickException(str(exc)) from exc
        if settings.store_kind == "memory":
            click.echo("warning: the memory:// app store keeps nothing; this change is lost on exit", err=True)
        try:
            yield store
        except (AppStoreError, AppExists, AppNotFound) as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            store.close()


pass_cli = click.make_pass_decorator(CliContext)


class AliasedGroup(click.Group):
    """A group where some commands answer to a second name (`start` for `serve`, as in Soketi)."""

    aliases = {"start": "serve"}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), envvar="VASK_CONFIG",
              show_envvar=True, help="TOML configuration file.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the SQLite database [env VASK_DATA_DIR; default .vask].")
@click.option("--database-url", metavar="URL",
              help="App store: postgresql://..., sqlite:///file.db or memory:// [env VASK_DATABASE_URL].")
@click.version_option(__version__, prog_name="vask")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """Vask: a self-hosted server speaking the Pusher Channels protocol.

    Settings come from, strongest first: options, VASK_* environment variables, the --config file,
    defaults. `vask config show` prints the result.
    """
    ctx.obj = CliContext(config_path, {"data_dir": data_dir, "database_url": database_url})


# ---------------------------------------------------------------------------------------------- serve


@cli.command()
@click.option("--host", help="Address to listen on [default 127.0.0.1].")
@click.option("--port", type=click.IntRange(0, 65535), help="Port [default 6001]; 0 picks a free port.")
@click.option("--ssl-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TLS certificate (PEM); serve wss:// and https://.")
@click.option("--ssl-key", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TLS private key (PEM).")
@click.option("--no-default-app", is_flag=True,
              help="Do not create the development app (id 100000, key app-key, secret app-secret) in an "
                   "empty store.")
@click.option("--broker", metavar="URL",
              help="Join a cluster through redis://..., redis+cluster://... (Redis Cluster) or nats://... .")
@click.option("--node-id", help="This node's id in the cluster [default: generated].")
@click.option("--region", help="Region label of this node.")
@click.option("--workers", type=click.IntRange(1, 256),
              help="Processes sharing the port (SO_REUSEPORT); more than 1 needs --broker.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error", "critical"]),
              help="Log level [default info]; debug logs every console event.")
@click.option("--log-format", type=click.Choice(["text", "json"]), help="Log lines as text or JSON [default text].")
@pass_cli
def serve(obj: CliContext, host: str | None, port: int | None, ssl_cert: Path | None, ssl_key: Path | None,
          no_default_app: bool, broker: str | None, node_id: str | None, region: str | None,
          workers: int | None, log_level: str | None, log_format: str | None) -> None:
    """Run the server (alias: start)."""
    settings = obj.settings(host=host, port=port, ssl_cert=ssl_cert, ssl_key=ssl_key,
                            create_default_app=False if no_default_app else None, broker=broker,
                            node_id=node_id, region=region, workers=workers, log_level=log_level,
                            log_format=log_format)
    if settings.workers > 1 and not settings.broker:
        raise click.UsageError("--workers above 1 needs --broker: the processes coordinate through it")
    from vask.server.main import run  # the server's dependencies load only for this command

    try:
        run(settings)
    except AppStoreError as exc:
        raise click.ClickException(str(exc)) from exc
    except ssl.SSLError as exc:
        raise click.ClickException(f"cannot use the TLS certificate or key: {exc}") from exc
    except OSError as exc:  # address in use, permission denied, unreadable certificate
        raise click.ClickException(f"cannot start the server: {exc}") from exc


# --------------------------------------------------------------------------------------------- config


@cli.group()
def config() -> None:
    """Inspect the configuration."""


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of TOML.")
@pass_cli
def config_show(obj: CliContext, as_json: bool) -> None:
    """Print the effective configuration, with passwords and secrets masked.

    The TOML output can be used as a --config file once masked values are filled in.
    """
    settings = obj.settings()
    data = settings.masked_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo("# Effective Vask configuration (passwords and secrets masked)")
    where = f"SQLite at {settings.sqlite_path}" if settings.sqlite_path else settings.store_kind
    click.echo(f"# app store: {where}")
    declared = data.pop("apps", [])
    for name, value in data.items():
        # TOML has no null: an unset optional setting is shown commented out.
        click.echo(f"# {name} = (unset)" if value is None else f"{name} = {_toml_value(value)}")
    for app in declared:  # tables come after every top-level key, as TOML requires
        click.echo("\n[[apps]]")
        app_settings = app.pop("settings", {})
        for name, value in app.items():
            if value is not None:
                click.echo(f"{name} = {_toml_value(value)}")
        if app_settings:
            click.echo("[apps.settings]")
            for name, value in app_settings.items():
                click.echo(f"# {name} = (unset)" if value is None else f"{name} = {_toml_value(value)}")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    # A JSON string is a valid TOML basic string for the characters settings can hold.
    return json.dumps(str(value), ensure_ascii=False)


# ----------------------------------------------------------------------------------------------- apps

# Ids and keys travel in URL paths (/apps/{id}/..., /app/{key}), so they keep to URL-safe characters.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_NONE_WORDS = {"none", "null", "unlimited"}
_SETTING_FIELDS = tuple(AppSettings.model_fields)
# click parameter -> AppSettings field, for the settings that have their own flag
_FLAG_FIELDS = {
    "client_events": "client_events",
    "user_auth": "user_authentication_required",
    "user_auth_timeout": "user_authentication_timeout",
    "subscription_count": "subscription_count_events",
    "max_connections": "max_connections",
}


def _check_token(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or _TOKEN.fullmatch(value):
        return value
    raise click.BadParameter("use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit")


def _check_secret(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or (value and value.isprintable() and not any(ch.isspace() for ch in value)):
        return value
    raise click.BadParameter("must be non-empty, printable and without spaces")


def _app_options(func: F) -> F:
    """The options shared by `apps create` and `apps update`: credentials, state and settings."""
    options = [
        click.option("--key", callback=_check_token, help="Public key clients connect with [create: random]."),
        click.option("--secret", callback=_check_secret, help="Signing secret [create: random]."),
        click.option("--name", help="A label for people."),
        click.option("--account", metavar="ID",
                     help="Billing account that owns the app; 'default' is the built-in one [create: default]."),
        click.option("--enabled/--disabled", default=None,
                     help="Whether the app accepts connections and API calls [create: enabled]."),
        click.option("--client-events/--no-client-events", default=None,
                     help="Allow client-* events sent by connections (client_events)."),
        click.option("--user-auth/--no-user-auth", default=None,
                     help="Require pusher:signin on every connection (user_authentication_required)."),
        click.option("--user-auth-timeout", type=click.IntRange(min=1), metavar="SECONDS",
                     help="Seconds a connection has to sign in (user_authentication_timeout)."),
        click.option("--subscription-count/--no-subscription-count", default=None,
                     help="Send pusher:subscription_count events (subscription_count_events)."),
        click.option("--max-connections", metavar="N|unlimited",
                     help="Concurrent connections allowed for the app (max_connections)."),
        click.option("--set", "assignments", multiple=True, metavar="FIELD=VALUE",
                     help="Set any app setting (repeatable; 'none' clears an optional limit). "
                          f"FIELD is one of: {', '.join(_SETTING_FIELDS)}."),
        click.option("--json", "as_json", is_flag=True, help="Print the app as JSON."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _setting_changes(params: dict[str, Any]) -> dict[str, Any]:
    """The settings named by flags and --set, as raw values for pydantic to validate and convert."""
    changes = {name: params[param] for param, name in _FLAG_FIELDS.items() if params[param] is not None}
    limit = changes.get("max_connections")
    if isinstance(limit, str) and limit.strip().lower() in _NONE_WORDS:
        changes["max_connections"] = None
    for assignment in params["assignments"]:
        name, sep, raw = assignment.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise click.BadParameter(f"expected FIELD=VALUE, got {assignment!r}", param_hint="--set")
        if name not in AppSettings.model_fields:
            raise click.BadParameter(f"unknown app setting {name!r}; valid fields: {', '.join(_SETTING_FIELDS)}",
                                     param_hint="--set")
        if name in changes:
            raise click.BadParameter(f"{name} is given more than once", param_hint="--set")
        raw = raw.strip()
        changes[name] = None if raw.lower() in _NONE_WORDS else raw
    return changes


def _apply_settings(base: AppSettings, changes: dict[str, Any]) -> AppSettings:
    try:
        return AppSettings.model_validate({**base.model_dump(), **changes})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e['input']!r})"
                             for e in exc.errors())
        raise click.UsageError(f"invalid app setting: {problems}") from exc


def _app_dict(app: App, secret: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {"id": app.id, "key": app.key, "secret": secret, "name": app.name,
                            "enabled": app.enabled, "account": app.account_id or DEFAULT_ACCOUNT_ID,
                            "settings": app.settings.model_dump(mode="json")}
    if secret is None:
        del data["secret"]
    return data


def _print_app(app: App, *, show_secret: bool, as_json: bool) -> None:
    secret = app.secret if show_secret else MASK
    if as_json:
        click.echo(json.dumps(_app_dict(app, secret), indent=2))
        return
    for label, value in (("id", app.id), ("key", app.key), ("secret", secret), ("name", app.name),
                         ("enabled", "yes" if app.enabled else "no"),
                         ("account", app.account_id or DEFAULT_ACCOUNT_ID)):
        click.echo(f"{label + ':':<9}{value}")
    click.echo("settings:")
    width = max(map(len, _SETTING_FIELDS))
    for name, value in app.settings.model_dump(mode="json").items():
        shown = "unlimited" if value is None else json.dumps(value)
        click.echo(f"  {name:<{width}}  {shown}")


def _get(store: AppStore, app_id: str) -> App:
    app = store.get_by_id(app_id)
    if app is None:
        raise click.ClickException(f"no app with id {app_id!r} (see `vask apps list`)")
    return app


def _new_secret() -> str:
    return secrets.token_hex(10)  # the same shape as the secrets new_app generates


@cli.group()
def apps() -> None:
    """Create and manage apps: credentials, state and per-app settings.

    Changes reach a running server within its app_cache_ttl (5 seconds by default).
    """


@apps.command("create")
@click.option("--id", "app_id", callback=_check_token, help="App id used in HTTP API paths [default: random].")
@_app_options
@pass_cli
def apps_create(obj: CliContext, /, app_id: str | None, **params: Any) -> None:
    """Create an app and print it, secret included (the only time besides rotate-secret)."""
    settings = _apply_settings(AppSettings(), _setting_changes(params))
    account_id = account_option(obj, params["account"])
    if app_id is not None and not NUMERIC.fullmatch(app_id):
        click.echo(f"warning: app id {app_id!r}: {NON_NUMERIC_WARNING}", err=True)
    with obj.store(create=True) as store:
        while True:
            app = new_app(app_id, params["key"], params["secret"], params["name"] or "", settings, account_id)
            if params["enabled"] is not None:
                app.enabled = params["enabled"]
            try:
                store.create(app)
                break
            except AppExists:
                # A clash on a random id is retried; a clash on a value the operator chose is reported.
                if app_id is not None or store.get_by_id(app.id) is None:
                    raise
    _print_app(app, show_secret=True, as_json=params["as_json"])


@apps.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (without secrets).")
@pass_cli
def apps_list(obj: CliContext, as_json: bool) -> None:
    """List apps (secrets are never shown here)."""
    with obj.store() as store:
        found = store.list()
    if as_json:
        click.echo(json.dumps([_app_dict(app, None) for app in found], indent=2))
        return
    if not found:
        click.echo("No apps. Create one with `vask apps create`.")
        return
    rows = [("ID", "KEY", "ENABLED", "CLIENT EVENTS", "MAX CONNECTIONS", "NAME")]
    rows += [(a.id, a.key, "yes" if a.enabled else "no", "yes" if a.settings.client_events else "no",
              "unlimited" if a.settings.max_connections is None else str(a.settings.max_connections), a.name)
             for a in found]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@apps.command("show")
@click.argument("app_id", metavar="ID")
@click.option("--show-secret", is_flag=True, help="Print the secret instead of ***.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_cli
def apps_show(obj: CliContext, app_id: str, show_secret: bool, as_json: bool) -> None:
    """Show one app; the secret is masked unless --show-secret is given."""
    with obj.store() as store:
        app = _get(store, app_id)
    _print_app(app, show_secret=show_secret, as_json=as_json)


@apps.command("update")
@click.argument("app_id", metavar="ID")
@_app_options
@pass_cli
def apps_update(obj: CliContext, /, app_id: str, **params: Any) -> None:
    """Change an app's key, secret, name, state or settings; what is not given stays as it is."""
    changes = _setting_changes(params)
    fields = {name: params[name] for name in ("key", "secret", "name", "enabled") if params[name] is not None}
    if params["account"] is not None:
        fields["account_id"] = account_option(obj, params["account"])
    if not changes and not fields:
        raise click.UsageError("nothing to change: give at least one option (see `vask apps update --help`)")
    with obj.store() as store:
        app = _get(store, app_id)
        app = app.model_copy(update={**fields, "settings": _apply_settings(app.settings, changes)})
        store.update(app)
    _print_app(app, show_secret=False, as_json=params["as_json"])


@apps.command("rotate-secret")
@click.argument("app_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the app as JSON.")
@pass_cli
def apps_rotate_secret(obj: CliContext, app_id: str, as_json: bool) -> None:
    """Replace an app's secret with a new random one and print it.

    Requests and auth signatures made with the old secret are refused once the server's cache expires.
    """
    with obj.store() as store:
        app = _get(store, app_id).model_copy(update={"secret": _new_secret()})
        store.update(app)
    _print_app(app, show_secret=True, as_json=as_json)


def _set_enabled(obj: CliContext, app_id: str, enabled: bool) -> None:
    with obj.store() as store:
        app = _get(store, app_id)
        if app.enabled != enabled:
            store.update(app.model_copy(update={"enabled": enabled}))
    click.echo(f"App {app_id} is {'enabled' if enabled else 'disabled'}.")


@apps.command("disable")
@click.argument("app_id", metavar="ID")
@pass_cli
def apps_disable(obj: CliContext, app_id: str) -> None:
    """Refuse new connections and API calls for an app (close code 4003), keeping its record."""
    _set_enabled(obj, app_id, False)


@apps.command("enable")
@click.argument("app_id", metavar="ID")
@pass_cli
def apps_enable(obj: CliContext, app_id: str) -> None:
    """Accept connections and API calls for a disabled app again."""
    _set_enabled(obj, app_id, True)


@apps.command("delete")
@click.argument("app_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def apps_delete(obj: CliContext, app_id: str, yes: bool) -> None:
    """Delete an app for good; its credentials stop working."""
    with obj.store() as store:
        app = _get(store, app_id)
        if not yes:
            click.confirm(f"Delete app {app.id} (key {app.key}{', ' + app.name if app.name else ''})?",
                          abort=True)
        store.delete(app_id)
    click.echo(f"Deleted app {app_id}.")


for _command in BILLING_COMMANDS:  # accounts, plans, usage, bill, calc (vask.cli_billing)
    cli.add_command(_command)
apps.add_command(webhooks_group)  # apps webhooks add|list|remove (vask.cli_webhooks)
cli.add_command(genconfig)  # genconfig, checkconfig, config reference (vask.cli_deploy)
cli.add_command(checkconfig)
config.add_command(config_reference)


def main() -> None:
    """Entry point of the `vask` console script and of `python -m vask`."""
    cli(prog_name="vask")
