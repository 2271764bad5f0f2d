"""Hypothesis state machine over the protocol core: clients connect, subscribe (public, private, presence),
unsubscribe, sign in, send client events, disconnect, and the server publishes, in any order. After every
step the hub agrees with a simple model: subscribers and occupancy, presence members and their counts,
occupied/vacated and member_added/removed webhooks balanced, connection counts, and metering (the deliveries
the observer is told of) equal to the messages the clients really received."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tests.unit.helpers import Client, World

CHANNELS = ["public-a", "private-b", "presence-c", "presence-d"]
USERS = ["u1", "u2", "u3"]
MAX_CLIENTS = 6


class CoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World(client_events=True, max_client_events_per_second=5)
        self.clients: list[Client] = []
        self.subs: dict[Client, dict[str, str | None]] = {}  # channel -> presence user id
        self.received: Counter[str] = Counter()  # app events (published or client-) received, by channel
        self.member_events: list[dict[str, Any]] = []

    # -- helpers ---------------------------------------------------------------------------------------------

    def drain(self) -> None:
        for client in self.clients:
            for message in client.frames():
                event = message.get("event", "")
                if event.startswith("ev-") or event.startswith("client-"):
                    self.received[message["channel"]] += 1

    # -- rules -----------------------------------------------------------------------------------------------

    @precondition(lambda self: len(self.clients) < MAX_CLIENTS)
    @rule()
    def connect(self) -> None:
        client = self.world.connect()
        client.frames()
        self.clients.append(client)
        self.subs[client] = {}

    @precondition(lambda self: bool(self.clients))
    @rule(i=st.integers(0, MAX_CLIENTS - 1))
    def disconnect(self, i: int) -> None:
        self.drain()
        client = self.clients.pop(i % len(self.clients))
        client.disconnect()
        del self.subs[client]

    @precondition(lambda self: bool(self.clients))
    @rule(i=st.integers(0, MAX_CLIENTS - 1), channel=st.sampled_from(CHANNELS), user=st.sampled_from(USERS))
    def subscribe(self, i: int, channel: str, user: str) -> None:
        client = self.clients[i % len(self.clients)]
        if channel in self.subs[client]:
            return  # re-subscribing is a client bug pusher-js never makes; tested elsewhere
        if channel.startswith("presence-"):
            client.join(channel, user, {"name": user})
            self.subs[client][channel] = user
        elif channel.startswith("private-"):
            client.subscribe(channel, sign=True)
            self.subs[client][channel] = None
        else:
            client.subscribe(channel)
            self.subs[client][channel] = None

    @precondition(lambda self: bool(self.clients))
    @rule(i=st.integers(0, MAX_CLIENTS - 1), channel=st.sampled_from(CHANNELS))
    def unsubscribe(self, i: int, channel: str) -> None:
        client = self.clients[i % len(self.clients)]
        client.unsubscribe(channel)  # also when not subscribed: must be a no-op
        self.subs[client].pop(channel, None)

    @precondition(lambda self: bool(self.clients))
    @rule(i=st.integers(0, MAX_CLIENTS - 1), user=st.sampled_from(USERS))
    def signin(self, i: int, user: str) -> None:
        self.clients[i % len(self.clients)].signin({"id": user})

    @precondition(lambda self: bool(self.clients))
    @rule(i=st.integers(0, MAX_CLIENTS - 1), channel=st.sampled_from(CHANNELS))
    def client_event(self, i: int, channel: str) -> None:
        client = self.clients[i % len(self.clients)]
        client.send("client-typing", {"x": 1}, channel=channel)  # refused unless subscribed and private/presence

    @rule(channel=st.sampled_from(CHANNELS), exclude=st.booleans())
    def publish(self, channel: str, exclude: bool) -> None:
        socket_id = self.clients[0].socket_id if exclude and self.clients else None
        self.world.hub.publish(self.world.app, channel, "ev-news", json.dumps({"n": 1}), socket_id)

    @rule(seconds=st.sampled_from([0.1, 1.0]))
    def tick(self, seconds: float) -> None:
        self.world.clock.advance(seconds)  # refills client-event tokens

    # -- invariants ------------------------------------------------------------------------------------------

    def reap(self) -> None:
        """Connections the server closed (signing in as a second user is refused with 4009) leave the model."""
        self.drain()
        for client in [c for c in self.clients if c.conn.closing]:
            assert client.peer.closed is not None
            self.clients.remove(client)
            del self.subs[client]

    @invariant()
    def hub_matches_model(self) -> None:
        self.reap()
        hub = self.world.hub
        state = hub.apps.get(self.world.app.id)
        assert hub.connection_count == len(self.clients)
        if state is None:
            assert not self.clients
            return
        assert set(state.connections) == {client.conn for client in self.clients}
        for name in CHANNELS:
            expected = {client.conn for client in self.clients if name in self.subs[client]}
            channel = state.channels.get(name)
            # Occupancy: a channel exists exactly while someone is subscribed.
            assert (channel is not None) == bool(expected), name
            if channel is None:
                continue
            assert set(channel.subscribers) == expected
            assert hub.channel_state(self.world.app.id, name).subscription_count == len(expected)
            if name.startswith("presence-"):
                users = Counter(self.subs[c][name] for c in self.clients if name in self.subs[c])
                assert set(channel.members) == set(users)
                assert {uid: m.connections for uid, m in channel.members.items()} == dict(users)
                assert sorted(hub.presence_user_ids(self.world.app.id, name)) == sorted(users)

    @invariant()
    def webhooks_balance(self) -> None:
        observer = self.world.observer
        state = self.world.hub.apps.get(self.world.app.id)
        channels = state.channels if state is not None else {}
        for name in CHANNELS:
            occupied = sum(1 for call in observer.named("channel_occupied") if call[2] == name)
            vacated = sum(1 for call in observer.named("channel_vacated") if call[2] == name)
            assert occupied - vacated == (1 if name in channels else 0), name
            if name.startswith("presence-"):
                members = channels[name].members if name in channels else {}
                for user in USERS:
                    added = sum(1 for c in observer.named("member_added") if c[2] == name and c[3] == user)
                    removed = sum(1 for c in observer.named("member_removed") if c[2] == name and c[3] == user)
                    assert added - removed == (1 if user in members else 0), (name, user)

    @invariant()
    def metering_equals_deliveries(self) -> None:
        self.drain()
        metered: Counter[str] = Counter()
        for call in self.world.observer.named("broadcast"):
            metered[call[2]] += call[3]
        assert {k: v for k, v in metered.items() if v} == {k: v for k, v in self.received.items() if v}


TestCoreMachine = CoreMachine.TestCase
TestCoreMachine.settings = settings(max_examples=300, stateful_step_count=40, deadline=None,
                                    suppress_health_check=[HealthCheck.too_slow])
