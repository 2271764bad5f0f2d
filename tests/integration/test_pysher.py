"""pysher (a Python Pusher Channels client, protocol 6, websocket-client based) against the real server.

pysher signs private and presence subscriptions itself when given the app secret, sends
``{"event":"pusher:ping","data":""}`` on open, and expects ``connection_established`` data as a JSON string.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

import pysher
import pytest

APP = {"id": "424242", "key": "test-key", "secret": "test-secret", "client_events": True}
TIMEOUT = 5.0


class Client:
    """A connected pysher client whose events land in queues the test can wait on."""

    def __init__(self, server: Any, key: str | None = None, *, user_data: dict[str, Any] | None = None,
                 secret: str | None = APP["secret"]) -> None:
        self.events: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        self.pusher = pysher.Pusher(key or server.app.key, custom_host=server.host, port=server.port,
                                    secure=False, secret=secret or "", user_data=user_data,
                                    log_level=logging.WARNING, reconnect_interval=1)
        self.pusher.connection.bind("pusher:error", lambda data: self.events.put(("", "pusher:error", data)))
        self.pusher.connect()

    def wait_connected(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while self.pusher.connection.state != "connected":
            assert time.monotonic() < deadline, f"pysher state {self.pusher.connection.state}"
            time.sleep(0.02)

    def subscribe(self, channel: str, *events: str) -> Any:
        handle = self.pusher.subscribe(channel)
        for name in ("pusher_internal:subscription_succeeded", *events):
            handle.bind(name, self._recorder(channel, name))
        return handle

    def _recorder(self, channel: str, name: str) -> Callable[[Any], None]:
        return lambda data: self.events.put((channel, name, data))

    def expect(self, channel: str, name: str) -> Any:
        deadline = time.monotonic() + TIMEOUT
        seen = []
        while (left := deadline - time.monotonic()) > 0:
            try:
                got = self.events.get(timeout=left)
            except queue.Empty:
                break
            if got[:2] == (channel, name):
                return got[2]
            seen.append(got)
        raise AssertionError(f"pysher got no {name} on {channel!r}; got {seen}")

    def nothing(self, within: float = 0.3) -> None:
        time.sleep(within)
        assert self.events.empty(), list(self.events.queue)


@pytest.fixture
def clients(server_factory: Any) -> Iterator[tuple[Any, Callable[..., Client]]]:
    server = server_factory([APP])
    made: list[Client] = []

    def make(*args: Any, connected: bool = True, **kwargs: Any) -> Client:
        client = Client(server, *args, **kwargs)
        made.append(client)
        if connected:
            client.wait_connected()
        return client

    yield server, make
    for client in made:
        client.pusher.disconnect(timeout=2)


def test_connects_and_gets_pong_for_its_empty_string_ping(clients: Any) -> None:
    _, make = clients
    client = make()
    assert client.pusher.connection.socket_id
    deadline = time.monotonic() + TIMEOUT
    while not client.pusher.connection.pong_received:  # pysher pings with data "" right after opening
        assert time.monotonic() < deadline, "no pusher:pong for pysher's ping"
        time.sleep(0.02)


def test_public_channel_receives_triggered_event(clients: Any) -> None:
    server, make = clients
    client = make()
    client.subscribe("news", "headline")
    assert client.expect("news", "pusher_internal:subscription_succeeded") in ("{}", {})
    server.pusher().trigger("news", "headline", {"title": "Vask ships"})
    assert json.loads(client.expect("news", "headline")) == {"title": "Vask ships"}
    server.pusher().trigger("other", "headline", {})
    client.nothing()


def test_private_channel_signed_by_pysher_and_client_events(clients: Any) -> None:
    server, make = clients
    alice, bob = make(), make()
    channel_a = alice.subscribe("private-room", "client-wave", "server-event")
    bob.subscribe("private-room", "client-wave")
    alice.expect("private-room", "pusher_internal:subscription_succeeded")
    bob.expect("private-room", "pusher_internal:subscription_succeeded")
    server.pusher().trigger("private-room", "server-event", "plain")
    assert alice.expect("private-room", "server-event") == "plain"
    channel_a.trigger("client-wave", {"from": "alice"})
    data = bob.expect("private-room", "client-wave")
    assert (json.loads(data) if isinstance(data, str) else data) == {"from": "alice"}
    alice.nothing()  # not echoed


def test_private_channel_with_wrong_secret_is_refused(clients: Any) -> None:
    _, make = clients
    client = make(secret="not-the-secret")
    client.subscribe("private-room")
    error = client.expect("", "pusher:error")
    message = (json.loads(error) if isinstance(error, str) else error)["message"]
    assert "Invalid signature" in message
    assert client.events.empty()


def test_presence_channel(clients: Any) -> None:
    server, make = clients
    first = make(user_data={"user_id": "u1", "user_info": {"name": "One"}})
    first.subscribe("presence-lobby", "pusher_internal:member_added", "pusher_internal:member_removed")
    first.expect("presence-lobby", "pusher_internal:subscription_succeeded")
    second = make(user_data={"user_id": "u2", "user_info": {"name": "Two"}})
    second.subscribe("presence-lobby")
    joined = json.loads(second.expect("presence-lobby", "pusher_internal:subscription_succeeded"))
    assert joined["presence"]["count"] == 2
    assert joined["presence"]["hash"] == {"u1": {"name": "One"}, "u2": {"name": "Two"}}
    added = json.loads(first.expect("presence-lobby", "pusher_internal:member_added"))
    assert added == {"user_id": "u2", "user_info": {"name": "Two"}}
    assert server.pusher().users_info("presence-lobby")["users"] in (
        [{"id": "u1"}, {"id": "u2"}], [{"id": "u2"}, {"id": "u1"}])
    second.pusher.unsubscribe("presence-lobby")
    assert json.loads(first.expect("presence-lobby", "pusher_internal:member_removed")) == {"user_id": "u2"}


def test_unknown_key_gets_4001(clients: Any) -> None:
    _, make = clients
    client = make("no-such-key", connected=False)
    error = client.expect("", "pusher:error")
    data = json.loads(error) if isinstance(error, str) else error
    assert data["code"] == 4001
    assert client.pusher.connection.state != "connected"
