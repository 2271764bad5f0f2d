"""Webhooks from a real ``vask serve`` to the WebhookView on Django's live server: signed by Vask, verified by
the view, delivered as signals (channel_occupied, member_added, client_event, member_removed, channel_vacated)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django_test_support import TEST_VASK
from django_ws import PusherSocket

from vask.contrib.django import get_client, signals

APP = {"id": "1000002", "key": "hook-key", "secret": "hook-secret", "client_events": True}
# Webhooks to localhost need allow_private; short delays keep the test quick.
SERVER_ENV = {"VASK_WEBHOOK_ALLOW_PRIVATE": "true", "VASK_WEBHOOK_VACATE_DELAY": "0.2", "VASK_APP_CACHE_TTL": "0.2"}


class Received:
    """Signals as they arrive on the live server's thread."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._cond = threading.Condition()

    def __call__(self, signal_name: str, **kwargs: Any) -> None:
        with self._cond:
            self.events.append((signal_name, kwargs))
            self._cond.notify_all()

    def wait_for(self, signal_name: str, channel: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for name, kwargs in self.events:
                    if name == signal_name and kwargs.get("channel") == channel:
                        return kwargs
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {signal_name} for {channel}; got {self.events}")
                self._cond.wait(remaining)

    def names(self, channel: str) -> list[str]:
        with self._cond:
            return [name for name, kwargs in self.events if kwargs.get("channel") == channel]


@pytest.fixture
def received() -> Iterator[Received]:
    seen = Received()
    connected = []
    for name, signal in signals.BY_NAME.items():
        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            kwargs.pop("signal")
            seen(_name, **kwargs)
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
    yield seen
    for signal, receiver in connected:
        signal.disconnect(receiver)


@pytest.fixture
def hooked(server_factory: Any, live_server: Any, settings: Any, received: Received) -> Iterator[Any]:
    """A server whose app sends every webhook to the live server's /pusher/webhook."""
    server = server_factory([APP], env=SERVER_ENV)
    settings.VASK = {**TEST_VASK, "APP_ID": APP["id"], "KEY": APP["key"], "SECRET": APP["secret"],
                     "HOST": server.host, "PORT": server.port}
    server.cli("apps", "webhooks", "add", APP["id"], f"{live_server.url}/pusher/webhook")
    sockets: list[PusherSocket] = []
    server.sockets = sockets
    # The running server picks the new target up within app_cache_ttl: probe until a webhook arrives.
    deadline = time.monotonic() + 10
    for attempt in range(1000):
        probe = PusherSocket(server)
        sockets.append(probe)
        probe.subscribe(f"probe-{attempt}")
        try:
            received.wait_for("channel_occupied", f"probe-{attempt}", timeout=0.5)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    yield server
    for socket in sockets:
        socket.close()


def test_vask_webhooks_become_django_signals(hooked: Any, received: Received) -> None:
    channel = "presence-doc.42"
    socket = PusherSocket(hooked)
    hooked.sockets.append(socket)
    auth = get_client().authenticate(channel, socket.socket_id, {"user_id": "7", "user_info": {"name": "Ada"}})
    assert socket.subscribe(channel, auth)["event"] == "pusher_internal:subscription_succeeded"

    occupied = received.wait_for("channel_occupied", channel)
    assert occupied["payload"] == {"name": "channel_occupied", "channel": channel}
    assert abs(occupied["time_ms"] - time.time() * 1000) < 60_000
    assert received.wait_for("member_added", channel)["user_id"] == "7"

    socket.ws.send(json.dumps({"event": "client-typing", "channel": channel, "data": {"on": True}}))
    typed = received.wait_for("client_event", channel)
    assert (typed["event"], typed["socket_id"], typed["user_id"]) == ("client-typing", socket.socket_id, "7")
    assert json.loads(typed["data"]) == {"on": True}

    socket.close()
    assert received.wait_for("member_removed", channel)["user_id"] == "7"
    received.wait_for("channel_vacated", channel)
    assert received.names(channel) == ["channel_occupied", "member_added", "client_event", "member_removed",
                                       "channel_vacated"]
