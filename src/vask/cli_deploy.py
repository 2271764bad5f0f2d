"""`vask genconfig`, `vask checkconfig` and `vask config reference`: writing and checking a deployment's file.

Registered on the main group by ``vask.cli``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vask.apps.declared import NON_NUMERIC_WARNING, NUMERIC
from vask.config import ConfigError, Settings
from vask.configdoc import generated_config, reference
from vask.factory import describe_store, open_store
from vask.masking import mask_url

if TYPE_CHECKING:
    from vask.cli import CliContext

CHECK_TIMEOUT = 5.0


@click.command("genconfig")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("vask.toml"),
              show_default=True, help="File to write ('-' prints it).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def genconfig(output: Path, force: bool) -> None:
    """Write a starting TOML configuration with random secrets: one declared app and the admin token."""
    text = generated_config()
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    if output.exists() and not force:
        raise click.ClickException(f"{output} exists; not replacing it (use --force, or -o another file)")
    # Created private: it holds the app secret and the admin token.
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    click.echo(f"Wrote {output} (mode 600). Check it with `vask --config {output} checkconfig`, "
               f"start with `vask --config {output} serve`.")


def _check_store(settings: Settings) -> str:
    path = settings.sqlite_path
    if path is not None and not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK):
            raise click.ClickException(f"app store: cannot create {path} ({parent} is not writable)")
        return f"{describe_store(settings)} (does not exist yet: `vask serve` creates it)"
    store = open_store(settings)
    try:
        store.get_by_id("~vask-check")
    finally:
        store.close()
    return f"{describe_store(settings)} answers"


async def _check_broker(url: str) -> None:
    if url.startswith(("nats://", "tls://")):
        import nats

        async def quiet(exc: Exception) -> None:  # nats-py prints tracebacks by default; the caller reports
            return None

        client = await asyncio.wait_for(nats.connect(url, connect_timeout=CHECK_TIMEOUT, max_reconnect_attempts=0,
                                                     allow_reconnect=False, error_cb=quiet), CHECK_TIMEOUT)
        await client.close()
        return
    if url.startswith("redis+cluster://"):
        from redis.asyncio.cluster import RedisCluster

        cluster = RedisCluster.from_url("redis://" + url.removeprefix("redis+cluster://"),
                                        socket_connect_timeout=CHECK_TIMEOUT)
        try:
            await asyncio.wait_for(cluster.ping(), CHECK_TIMEOUT)
        finally:
            await cluster.aclose()
        return
    from redis.asyncio import Redis

    redis = Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT)
    try:
        await redis.ping()
    finally:
        await redis.aclose()


@click.command("checkconfig")
@click.option("--offline", is_flag=True, help="Only validate the settings; do not contact the store or broker.")
@click.pass_obj
def checkconfig(obj: CliContext, offline: bool) -> None:
    """Validate the configuration (--config, VASK_* variables) and check that its store and broker answer."""
    try:
        settings = Settings.load(obj.config_path, **obj.overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    source = str(obj.config_path) if obj.config_path else "no file (VASK_* environment and defaults)"
    click.echo(f"configuration: {source}: valid")
    for app in settings.declared_apps():
        note = "" if NUMERIC.fullmatch(app.id) else f" (warning: {NON_NUMERIC_WARNING})"
        click.echo(f"declared app: {app.id} (key {app.key}){note}")
    if offline:
        return
    from vask.apps.base import AppStoreError

    try:
        click.echo(f"app store: {_check_store(settings)}")
    except AppStoreError as exc:
        raise click.ClickException(f"app store: {describe_store(settings)} does not answer: {exc}") from exc
    if settings.broker:
        try:
            asyncio.run(_check_broker(settings.broker))
        except Exception as exc:
            raise click.ClickException(f"broker: {mask_url(settings.broker)} does not answer: "
                                       f"{str(exc) or type(exc).__name__}") from exc
        click.echo(f"broker: {mask_url(settings.broker)} answers")
    else:
        click.echo("broker: none (one node, in-process)")


@click.command("reference")
def config_reference() -> None:
    """Print the configuration reference (Markdown) generated from the settings model (docs/configuration.md)."""
    click.echo(reference(), nl=False)
