"""A real HTTP webhook receiver and raw WebSocket clients for the webhook integration tests.

Every request the receiver gets can be checked the way receiving apps check it: pusher-http-python's
``validate_webhook`` (key, HMAC of the exact body, time_ms within 5 minutes) and pusher-http-node's exact
``Content-Type: application/json`` comparison.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pusher
from websockets.sync.client import ClientConnection, connect

# Small delays so the suite stays fast; each test can override them.
FAST_ENV = {
    "VASK_APP_CACHE_TTL": "0.1",
    "VASK_WEBHOOK_ALLOW_PRIVATE": "true",
    "VASK_WEBHOOK_VACATE_DELAY": "0.3",
    "VASK_WEBHOOK_RETRY_BASE": "0.05",
    "VASK_WEBHOOK_RETRY_MAX_DELAY": "0.2",
    "VASK_WEBHOOK_TIMEOUT": "2",
    "VASK_SHUTDOWN_GRACE": "2",
}
APP = {"id": "424242", "key": "test-key", "secret": "test-secret", "client_events": True,
       "subscription_count_events": True}


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # lower-case names
    content_types: list[str]  # every Content-Type header sent (there must be exactly one)
    body: bytes
    status: int  # what the receiver answered (or was about to, for a request it stalled)
    at: float


class Receiver:
    """Answers POSTs from a script of (status, seconds to stall) per request, then 200 at once."""

    def __init__(self, script: list[tuple[int, float]] | None = None) -> None:
        self.requests: list[Request] = []
        self.script = list(script or [])
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    status, stall = receiver.script.pop(0) if receiver.script else (200, 0.0)
                    receiver.requests.append(Request(
                        self.path, {k.lower(): v for k, v in self.headers.items()},
                        self.headers.get_all("Content-Type") or [], body, status, time.monotonic()))
                if stall:
                    time.sleep(stall)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def snapshot(self) -> list[Request]:
        with self.lock:
            return list(self.requests)

    def wait(self, predicate: Callable[[list[Request]], bool], timeout: float = 5.0) -> list[Request]:
        deadline = time.monotonic() + timeout
        while True:
            requests = self.snapshot()
            if predicate(requests):
                return requests
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; received: {[json.loads(r.body) for r in requests]}")
            time.sleep(0.02)

    def events(self, path: str | None = None) -> list[dict[str, Any]]:
        """Events of the requests answered 2xx, in arrival order."""
        return [e for r in self.snapshot() if 200 <= r.status < 300 and (path is None or r.path == path)
                for e in json.loads(r.body)["events"]]

    def wait_events(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0,
                    path: str | None = None) -> list[dict[str, Any]]:
        self.wait(lambda _: predicate(self.events(path)), timeout)
        return self.events(path)


def verify(app: Any, request: Request) -> dict[str, Any]:
    """The checks a receiving app makes; returns the validated body."""
    assert request.content_types == ["application/json"], request.content_types  # pusher-http-node: exact
    client = pusher.Pusher(app_id=app.id, key=app.key, secret=app.secret)
    body = client.validate_webhook(key=request.headers["x-pusher-key"],
                                   signature=request.headers["x-pusher-signature"], body=request.body.decode())
    assert body is not None, f"pusher-http-python refused the webhook: {request}"
    assert isinstance(body["time_ms"], int)
    assert request.headers["x-vask-delivery"]
    return body  # type: ignore[no-any-return]


def verify_all(app: Any, receiver: Receiver) -> None:
    for request in receiver.snapshot():
        verify(app, request)


class Client:
    """A raw Pusher protocol client over a real WebSocket."""

    def __init__(self, server: Any, app: Any | None = None) -> None:
        self.server = server
        self.app = app or server.app
        self.ws: ClientConnection = connect(f"{server.ws_url}/app/{self.app.key}?protocol=7&client=test").__enter__()
        established = self.recv("pusher:connection_established")
        self.socket_id: str = json.loads(established["data"])["socket_id"]

    def recv(self, event: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message["event"] == event:
                return message  # type: ignore[no-any-return]

    def send(self, event: str, data: Any, channel: str | None = None) -> None:
        message: dict[str, Any] = {"event": event, "data": data}
        if channel is not None:
            message["channel"] = channel
        self.ws.send(json.dumps(message))

    def subscribe(self, channel: str, user_id: str | None = None, wait: bool = True) -> None:
        data: dict[str, Any] = {"channel": channel}
        if channel.startswith(("private-", "presence-")):
            custom = {"user_id": user_id, "user_info": {"name": user_id}} if user_id else None
            data.update(self.server.pusher(self.app).authenticate(channel=channel, socket_id=self.socket_id,
                                                                  custom_data=custom))
        self.send("pusher:subscribe", data)
        if wait:
            self.recv("pusher_internal:subscription_succeeded")

    def unsubscribe(self, channel: str) -> None:
        self.send("pusher:unsubscribe", {"channel": channel})

    def close(self) -> None:
        self.ws.close()


def add_webhook(server: Any, url: str, *options: str, app: Any | None = None) -> None:
    """Add a target with the real CLI, then wait until the server's app cache (TTL 0.1 s) can see it."""
    server.cli("apps", "webhooks", "add", (app or server.app).id, url, *options)
    time.sleep(0.3)


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["name"] for e in events]
