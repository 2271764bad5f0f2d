"""Fuzz targets over Vask's parsers, shared by the hypothesis tests (tests/unit/test_fuzz_parsers.py, in CI) and
the atheris run (scripts/fuzz.py, `make fuzz`). Each takes bytes and raises only on a bug: bad input must get
its documented answer (a pusher:error, an HTTP status, a validation error), never an unexpected exception."""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from typing import Any
from urllib.parse import urlencode

from pydantic import ValidationError
from websockets.frames import Frame
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from vask.apps.base import App, AppSettings, WebhookTarget
from vask.core import session
from vask.core.connection import Connection
from vask.core.hub import Hub
from vask.protocol import frames, rest
from vask.protocol.rest_auth import RestAuthError, parse_query, sign_request

APP = App(id="3", key="fuzz-key", secret="fuzz-secret",
          settings=AppSettings(client_events=True, user_authentication_required=False))
STATUSES = {200, 202, 400, 401, 403, 404, 405, 413, 429, 500, 503}


class _Peer:
    def __init__(self) -> None:
        self.out = 0

    def write(self, data: bytes) -> None:
        self.out += len(data)

    def buffered(self) -> int:
        return 0

    def close(self, code: int, reason: str) -> None:
        pass


class _Flusher:
    def mark(self, conn: Connection) -> None:
        pass


class _Apps:
    def get_by_id(self, app_id: str) -> App | None:
        return APP if app_id == APP.id else None

    def get_by_key(self, key: str) -> App | None:
        return APP if key == APP.key else None


def _hub() -> tuple[Hub, Connection]:
    hub = Hub(time.monotonic)
    conn = Connection(APP, _Peer(), _Flusher(), time.monotonic(), 1 << 20)
    hub.add(conn)
    return hub, conn


def pusher_message(data: bytes) -> None:
    """A client's text message: decoded, then handled by the protocol core (subscribe, signin, client events)."""
    with contextlib.suppress(frames.BadMessage):
        frames.decode(data)
    hub, conn = _hub()
    session.handle(hub, conn, data, time.monotonic())  # must answer bad input itself, never raise
    hub.remove(conn)


def ws_frames(data: bytes) -> None:
    """Bytes after the handshake, through the frame parser the server uses."""
    ws = ServerProtocol(max_size=64 * 1024, state=OPEN)
    ws.receive_data(data)
    for event in ws.events_received():
        assert isinstance(event, Frame)
    ws.data_to_send()
    assert ws.parser_exc is None or not isinstance(ws.parser_exc, (AssertionError, TypeError, AttributeError))


def rest_request(data: bytes) -> None:
    """An HTTP API call: method, path, query and body split from ``data``, signed with the app's secret half the
    time so the body parsers are reached too."""
    signed, data = data[:1] == b"s", data[1:]
    parts = data.split(b"\n", 3) + [b""] * 4
    method = parts[0].decode("latin-1")[:10] or "POST"
    path = "/apps/3/" + parts[1].decode("latin-1")
    query = parts[2].decode("latin-1")
    body = parts[3]
    if signed:
        try:
            params = [(k, v) for k, v in parse_query(query) if not k.startswith("auth_")]
        except RestAuthError:
            params = []
        params += [("auth_key", APP.key), ("auth_timestamp", str(int(time.time()))), ("auth_version", "1.0")]
        if body:
            params.append(("body_md5", hashlib.md5(body).hexdigest()))
        signature = sign_request(APP.secret, method, path, params)
        query = urlencode([*params, ("auth_signature", signature)])
    hub, _ = _hub()
    response = rest.handle(method, path, query, body, time.time(), _Apps(), hub)
    assert response.status in STATUSES, response.status
    assert isinstance(response.body, bytes | str)


def webhook_config(data: bytes) -> None:
    """App settings and webhook targets as an operator writes them (JSON), validated."""
    try:
        value: Any = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return
    try:
        if isinstance(value, dict) and "url" in value:
            WebhookTarget.model_validate(value)
        else:
            AppSettings.model_validate({"webhooks": value} if isinstance(value, list) else value)
    except ValidationError:
        pass


TARGETS = {"pusher_message": pusher_message, "ws_frames": ws_frames, "rest_request": rest_request,
           "webhook_config": webhook_config}
