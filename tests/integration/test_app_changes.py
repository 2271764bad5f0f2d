"""Changes made with `vask apps ...` reach connections that are already open, within app_cache_ttl."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pusher
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

APP = {"id": "515151", "key": "changes-key", "secret": "changes-secret", "client_events": False}
FAST = {"VASK_APP_CACHE_TTL": "0.2", "VASK_SWEEP_INTERVAL": "0.1"}


def frames_until(ws: ClientConnection, event: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
        if frame["event"] == event:
            return frame  # type: ignore[no-any-return]


@contextmanager
def open_private(server: Any, channel: str) -> Iterator[ClientConnection]:
    with connect(f"{server.ws_url}/app/{APP['key']}?protocol=7") as ws:
        socket_id = json.loads(frames_until(ws, "pusher:connection_established")["data"])["socket_id"]
        client: pusher.Pusher = server.pusher()
        auth = client.authenticate(channel=channel, socket_id=socket_id)
        ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth["auth"]}}))
        frames_until(ws, "pusher_internal:subscription_succeeded")
        yield ws


def test_enabling_client_events_applies_to_open_connections(server_factory: Any) -> None:
    server = server_factory([APP], env=FAST)
    with open_private(server, "private-chat") as a, open_private(server, "private-chat") as b:
        a.send(json.dumps({"event": "client-hi", "channel": "private-chat", "data": {}}))
        assert "not enabled" in frames_until(a, "pusher:error")["data"]["message"]
        server.cli("apps", "update", APP["id"], "--client-events")
        deadline = time.monotonic() + 5
        while True:  # the running server picks the change up within app_cache_ttl plus one sweep
            a.send(json.dumps({"event": "client-hi", "channel": "private-chat", "data": {"n": 1}}))
            a.send(json.dumps({"event": "pusher:ping", "data": {}}))
            frame = json.loads(a.recv(timeout=5))
            if frame["event"] != "pusher:error":
                break
            frames_until(a, "pusher:pong")
            assert time.monotonic() < deadline, "client events stayed disabled for the open connection"
            time.sleep(0.1)
        assert frames_until(b, "client-hi")["data"] == {"n": 1}


def test_disabling_an_app_closes_its_connections_with_4003(server_factory: Any) -> None:
    server = server_factory([APP], env=FAST)
    with open_private(server, "private-x") as ws:
        server.cli("apps", "disable", APP["id"])
        try:
            error = frames_until(ws, "pusher:error")
            assert error["data"]["code"] == 4003
            ws.recv(timeout=5)
        except ConnectionClosed:
            pass
        assert ws.close_code == 4003
