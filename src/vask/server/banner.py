"""What `vask serve` prints at start: the store it uses, the declared apps it synced, ready-to-paste snippets."""

from __future__ import annotations

import json
import logging

from vask.apps.base import App, AppStore
from vask.apps.declared import SyncReport, sync
from vask.config import Settings
from vask.factory import DEFAULT_APP_SECRET, describe_store, ensure_default_app

log = logging.getLogger("vask")


def prepare_apps(store: AppStore, settings: Settings) -> tuple[list[str], App | None]:
    """Sync the declared apps, or seed the development app; return lines to print and the app to show.

    Blocking: run it off the event loop.
    """
    lines: list[str] = []
    declared = settings.declared_apps()
    if declared:
        report: SyncReport = sync(store, declared)
        parts = [f"{label} {', '.join(ids)}" for label, ids in
                 (("created", report.created), ("updated", report.updated), ("unchanged", report.unchanged)) if ids]
        lines.append(f"Declared apps: {'; '.join(parts)}")
        lines += [f"WARNING: {warning}" for warning in report.warnings]
        return lines, store.get_by_id(declared[0].id)
    default = ensure_default_app(store, settings)
    if default is not None:
        lines.append(f"WARNING: no app was configured, so a development app was created: id={default.id} "
                     f"key={default.key} secret={default.secret}. Do not use it in production (declare your apps "
                     "in the configuration or create them with `vask apps create`; --no-default-app turns this "
                     "off).")
        return lines, default
    apps = store.list()
    return lines, apps[0] if apps else None


def snippets(settings: Settings, port: int, app: App) -> list[str]:
    """pusher-http-python and pusher-js code that connects to this server as ``app``."""
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # what a client on this machine uses; others use the machine's name
    tls = settings.tls
    # The secret is printed only for the well-known development app; others stay out of logs.
    secret = json.dumps(app.secret) if app.secret == DEFAULT_APP_SECRET else \
        f'"..."  # vask apps show {app.id} --show-secret'
    return [
        f"Connect to app {app.id} (key {app.key}):",
        "  # server side, pip install pusher",
        "  import pusher",
        f"  client = pusher.Pusher(app_id={json.dumps(app.id)}, key={json.dumps(app.key)}, secret={secret},",
        f"                         host={json.dumps(host)}, port={port}, ssl={tls})",
        "  // browser, npm install pusher-js",
        f"  const pusher = new Pusher({json.dumps(app.key)}, {{cluster: '', wsHost: {json.dumps(host)}, "
        f"wsPort: {port}, wssPort: {port}, httpHost: {json.dumps(host)}, httpPort: {port}, httpsPort: {port}, "
        f"forceTLS: {'true' if tls else 'false'}}});",  # http*: the HTTP fallback comes here, not to Pusher's hosts
    ]


def store_line(settings: Settings) -> str:
    return f"App store: {describe_store(settings)}"
