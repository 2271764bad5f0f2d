"""Hub.sweep: liveness pings (§1.9), authorized connections (§1.12), throttled subscription counts, cache expiry."""

from __future__ import annotations

from helpers import Client, World, error_frame, internal, succeeded

PING = b'{"event":"pusher:ping","data":"{}"}'


def count_frame(channel: str, n: int) -> dict[str, object]:
    return internal("pusher_internal:subscription_count", {"subscription_count": n}, channel)


# --- liveness --------------------------------------------------------------------------------------------------

def test_ping_after_activity_timeout_then_4201_without_pong() -> None:
    world = World()  # activity_timeout 120
    client = world.connect()
    t0 = world.clock.now
    world.hub.sweep(t0 + 119.9, 30)
    assert client.raw_frames() == []
    world.hub.sweep(t0 + 120, 30)
    assert client.raw_frames() == [PING]
    world.hub.sweep(t0 + 149.9, 30)  # one ping only while waiting
    assert client.raw_frames() == []
    assert client.peer.closed is None
    world.hub.sweep(t0 + 150, 30)
    assert client.peer.closed == (4201, "Pong reply not received")
    assert client.frames() == [error_frame(4201, "Pong reply not received")]
    assert world.hub.app_connections(world.app.id) == 0
    world.hub.sweep(t0 + 500, 30)
    assert client.peer.close_calls == 1


def test_pong_resets_the_timer() -> None:
    world = World()
    client = world.connect()
    t0 = world.clock.now
    world.hub.sweep(t0 + 120, 30)
    assert client.raw_frames() == [PING]
    world.clock.now = t0 + 140
    client.send("pusher:pong", {})
    world.hub.sweep(t0 + 170, 30)
    assert client.peer.closed is None
    assert client.raw_frames() == []
    world.hub.sweep(t0 + 259.9, 30)
    assert client.raw_frames() == []
    world.hub.sweep(t0 + 260, 30)
    assert client.raw_frames() == [PING]


def test_any_message_counts_as_activity() -> None:
    world = World(activity_timeout=10)
    client = world.connect()
    t0 = world.clock.now
    world.clock.now = t0 + 9
    client.subscribe("room")
    client.frames()
    world.hub.sweep(t0 + 10, 30)
    assert client.raw_frames() == []
    world.hub.sweep(t0 + 19, 30)
    assert client.raw_frames() == [PING]
    world.clock.now = t0 + 20
    client.send_raw(b"garbage")  # even a bad frame shows the client is alive
    assert client.events() == ["pusher:error"]
    world.hub.sweep(t0 + 49, 30)
    assert client.peer.closed is None


def test_one_ping_frame_is_shared_and_busy_clients_are_not_pinged() -> None:
    world = World(activity_timeout=10)
    idle1, idle2, busy = world.clients(3)
    world.clock.now += 9
    busy.send("pusher:ping", {})
    busy.frames()
    world.hub.sweep(world.clock.now + 1, 30)
    assert idle1.conn.outbox[0] is idle2.conn.outbox[0]
    assert busy.conn.outbox == []
    assert idle1.raw_frames() == idle2.raw_frames() == [PING]


# --- authorized connections ------------------------------------------------------------------------------------

def test_unauthorized_connections_closed_4009_when_the_app_requires_it() -> None:
    world = World(user_authentication_required=True, user_authentication_timeout=30)
    t0 = world.clock.now
    unsigned, public, signed, private, presence, left_private = world.clients(6)
    public.subscribe("room")
    signed.signin({"id": "u1"})
    private.subscribe("private-x", sign=True)
    presence.join("presence-x", "p")
    left_private.subscribe("private-y", sign=True)
    left_private.unsubscribe("private-y")
    for client in (public, signed, private, presence, left_private):
        client.frames()
    world.hub.sweep(t0 + 29.9, 30)
    assert all(c.peer.closed is None for c in (unsigned, public, signed, private, presence, left_private))
    world.hub.sweep(t0 + 30, 30)
    reason = "Connection not authorized within timeout."
    for client in (unsigned, public, left_private):
        assert client.peer.closed == (4009, reason)
        assert client.frames() == [error_frame(4009, reason)]
    for client in (signed, private, presence):
        assert client.peer.closed is None
        assert client.frames() == []
    assert world.hub.channel_state(world.app.id, "room").occupied is False


def test_authorized_connections_kept_while_a_private_channel_remains() -> None:
    world = World(user_authentication_required=True, user_authentication_timeout=5)
    client = world.connect()
    client.subscribe("private-a", sign=True)
    client.subscribe("private-b", sign=True)
    client.unsubscribe("private-a")
    world.hub.sweep(world.clock.now + 5, 30)
    assert client.peer.closed is None
    client.unsubscribe("private-b")
    world.hub.sweep(world.clock.now + 5, 30)
    assert client.peer.closed is not None
    assert client.peer.closed[0] == 4009


def test_not_required_keeps_unsigned_connections() -> None:
    world = World()
    client = world.connect()
    world.clock.now += 3600
    client.send("pusher:ping", {})
    world.hub.sweep(world.clock.now, 30)
    assert client.peer.closed is None


# --- subscription_count ----------------------------------------------------------------------------------------

def test_subscription_count_on_subscribe_and_unsubscribe() -> None:
    world = World(subscription_count_events=True)
    a, b = world.clients(2)
    a.subscribe("room")
    assert a.raw_frames() == [
        b'{"event":"pusher_internal:subscription_succeeded","data":"{}","channel":"room"}',
        b'{"event":"pusher_internal:subscription_count","data":"{\\"subscription_count\\":1}","channel":"room"}']
    b.subscribe("room")
    assert b.frames() == [succeeded("room"), count_frame("room", 2)]
    assert a.frames() == [count_frame("room", 2)]
    b.unsubscribe("room")
    assert a.frames() == [count_frame("room", 1)]
    assert b.frames() == []
    assert world.observer.named("subscription_count") == [
        ("subscription_count", "3", "room", 1), ("subscription_count", "3", "room", 2),
        ("subscription_count", "3", "room", 1)]
    a.unsubscribe("room")  # vacated: nobody to tell
    assert len(world.observer.named("subscription_count")) == 3


def test_subscription_count_on_private_and_cache_but_not_presence() -> None:
    world = World(subscription_count_events=True)
    client = world.connect()
    client.subscribe("private-x", sign=True)
    client.subscribe("cache-x")
    client.join("presence-x", "u")
    frames = client.frames()
    assert frames[:2] == [succeeded("private-x"), count_frame("private-x", 1)]
    assert frames[2:5] == [succeeded("cache-x"), internal("pusher:cache_miss", {}, "cache-x"),
                           count_frame("cache-x", 1)]
    assert [f["event"] for f in frames[5:]] == ["pusher_internal:subscription_succeeded"]
    assert [call[2] for call in world.observer.named("subscription_count")] == ["private-x", "cache-x"]


def test_no_subscription_count_unless_enabled() -> None:
    world = World()
    a, b = world.clients(2)
    a.subscribe("room")
    b.subscribe("room")
    assert a.frames() == [succeeded("room")]
    assert world.observer.named("subscription_count") == []


def test_subscription_count_throttled_above_100_and_sent_by_sweep() -> None:
    world = World(subscription_count_events=True)
    clients = world.clients(100)
    for client in clients:
        client.subscribe("room")
    last_counts = [client.frames()[-1] for client in clients]
    assert all(f == count_frame("room", 100) for f in last_counts)
    t0 = world.clock.now
    extra = world.connect()
    extra.subscribe("room")  # 101 subscribers, a count went out less than 5 s ago
    assert extra.frames() == [succeeded("room")]
    assert clients[0].frames() == []
    world.hub.sweep(t0 + 4.9, 30)
    assert clients[0].frames() == []
    world.hub.sweep(t0 + 5, 30)
    assert clients[0].frames() == [count_frame("room", 101)]
    assert extra.frames() == [count_frame("room", 101)]
    world.hub.sweep(t0 + 20, 30)  # nothing changed: nothing sent
    assert clients[0].frames() == []
    world.clock.now = t0 + 20
    another = world.connect()  # the last count is older than 5 s: sent at once
    another.subscribe("room")
    assert another.frames() == [succeeded("room"), count_frame("room", 102)]
    another.unsubscribe("room")  # right after: throttled again
    assert clients[0].frames() == [count_frame("room", 102)]
    world.hub.sweep(t0 + 25, 30)
    assert clients[0].frames() == [count_frame("room", 101)]
    counts = [call[3] for call in world.observer.named("subscription_count")]
    assert counts[-3:] == [101, 102, 101]


def test_count_frame_is_shared() -> None:
    world = World(subscription_count_events=True)
    clients: list[Client] = world.clients(3)
    for client in clients:
        client.subscribe("room")
        client.frames()
    clients[2].unsubscribe("room")
    assert clients[0].conn.outbox[0] is clients[1].conn.outbox[0]


# --- cache expiry -------------------------------------------------------------------------------------------------

def test_sweep_drops_expired_cache_entries() -> None:
    world = World()
    world.hub.publish(world.app, "cache-a", "ev", "x")
    t0 = world.clock.now
    world.hub.sweep(t0 + 1799, 30)
    assert "cache-a" in world.hub.state(world.app).cache
    cached = world.hub.channel_state(world.app.id, "cache-a").cache
    assert cached is not None
    assert (cached.event, cached.data, cached.ttl) == ("ev", "x", 1800)
    world.clock.now = t0 + 1800
    assert world.hub.channel_state(world.app.id, "cache-a").cache is None
    world.hub.sweep(t0 + 1800, 30)
    assert world.hub.state(world.app).cache == {}
