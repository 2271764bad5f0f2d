"""Each per-app rate limit on one node and on a 2-node cluster (the machine's real Redis and NATS), driven by
pusher-http-python and raw Pusher WebSocket clients:

* HTTP reads (``max_read_requests_per_second``) and HTTP publishes (``max_backend_events_per_second``, a batch
  costs its event count): 429 with a JSON ``{"error": ..., "code": 429}`` body over the limit.
* client events (``max_client_events_per_second``, per connection): a ``pusher:error`` 4301 frame over the
  limit; the event is dropped and the connection stays (a 43xx close would stop pusher-js reconnecting).

For each: the first request or event within the limit is never refused (on a cluster node too, whose reads
are answered from the shared state after an await: vask.server.routes charges a request once), going over is
refused with a clear message, and tokens come back after waiting. Buckets are per node (and, for client
events, per connection); the nodes here are shared by the module's tests, each test with an app of its own.

No test relies on tight timing: a refusal expected "right away" is only asserted when the client measured
that less time passed than the bucket needs to refill; waits for refills are 1.5x what the rate needs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cluster_helpers import Cluster, broker_problem
from pusher.errors import PusherBadStatus
from raw_helpers import RawClient, connect_raw, data_of

from conftest import VaskServer, start_server
from private_nats import NATS_URL, REDIS_URL

READ_COLD = {"id": "610001", "key": "rl-read-cold", "secret": "rl-secret-1", "max_read_requests_per_second": 1}
READ_WARM = {"id": "610002", "key": "rl-read-warm", "secret": "rl-secret-2", "max_read_requests_per_second": 1}
PUBLISH = {"id": "610003", "key": "rl-publish", "secret": "rl-secret-3", "max_backend_events_per_second": 3}
# Publishes asking for channel attributes: on a cluster they are answered from the shared state, like reads.
PUBLISH_INFO = {"id": "610004", "key": "rl-publish-info", "secret": "rl-secret-4",
                "max_backend_events_per_second": 1}
CLIENT = {"id": "610005", "key": "rl-client", "secret": "rl-secret-5", "client_events": True,
          "max_client_events_per_second": 2}
APPS = [READ_COLD, READ_WARM, PUBLISH, PUBLISH_INFO, CLIENT]
# Long enough that "warm" below stays warm on a slow machine (the cluster helpers default to 1 s).
ENV = {"VASK_APP_CACHE_TTL": "60"}


@pytest.fixture(scope="module", params=["one-node", "redis", "nats"])
def nodes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[VaskServer]]:
    """One node, or two nodes of one cluster on the machine's Redis or NATS."""
    data_dir: Path = tmp_path_factory.mktemp(f"rl-{request.param}")
    if request.param == "one-node":
        server = start_server(data_dir, APPS, (), ENV)
        try:
            yield [server]
        finally:
            server.process.kill()
            server.process.wait()
        return
    problem = broker_problem(request.param)
    if problem:
        pytest.skip(problem)
    cluster = Cluster(data_dir, REDIS_URL if request.param == "redis" else NATS_URL, APPS, env=ENV)
    try:
        yield cluster.start(2)
    finally:
        cluster.stop()


def sdk(node: VaskServer, app: dict[str, Any]) -> Any:
    return node.pusher(node.apps[app["id"]])


def attempt(request: Callable[..., Any], *args: Any) -> tuple[int, Any]:
    """(HTTP status, decoded body) of one pusher-http-python call."""
    try:
        return 200, request(*args)
    except PusherBadStatus as exc:  # the SDK's error for statuses it has no class for: "429: <body>"
        status, _, body = str(exc).partition(": ")
        return int(status), json.loads(body)


def assert_rate_refusal(body: Any, app: dict[str, Any], kind: str) -> None:
    rate = app["max_read_requests_per_second" if kind == "read" else "max_backend_events_per_second"]
    assert body["code"] == 429, body
    message = body["error"]
    assert message.startswith("Rate limit exceeded"), message
    assert f"at most {rate} {kind}" in message and "per second" in message and app["id"] in message, message


def over_the_limit(request: Callable[..., Any], *args: Any, rate: float, tries: int = 30) -> Any:
    """Repeat a request costing 1 until it is refused, checking that no more got through than a bucket of
    ``rate`` tokens (full at most) allows; returns the refusal's body."""
    started = time.monotonic()
    for accepted in range(tries):
        status, body = attempt(request, *args)
        if status == 429:
            elapsed = time.monotonic() - started
            # A full bucket plus what refilled meanwhile (+1 for rounding at the edges).
            assert accepted <= rate + rate * elapsed + 1, (accepted, elapsed)
            return body
        assert status == 200, (status, body)
    raise AssertionError(f"{tries} requests in {time.monotonic() - started:.1f}s and none refused at {rate}/s")


# -- HTTP reads --------------------------------------------------------------------------------


def test_first_read_is_never_refused(nodes: list[VaskServer]) -> None:
    """With 1 read per second, the first read of each app on each node is answered, whether the node still had
    to load the app (cold) or had it cached (warm: a publish loaded it, spending no read token)."""
    for node in nodes:
        cold = sdk(node, READ_COLD)
        assert attempt(cold.channels_info) == (200, {"channels": {}})

        warm = sdk(node, READ_WARM)
        assert attempt(warm.trigger, "warm-up", "ev", {}) == (200, {})
        assert attempt(warm.channel_info, "presence-room", ["user_count"]) == (
            200, {"occupied": False, "user_count": 0})


def test_reads_over_the_limit_are_refused_then_allowed_again(nodes: list[VaskServer]) -> None:
    for node in nodes:
        reads = sdk(node, READ_WARM)
        assert_rate_refusal(over_the_limit(reads.users_info, "presence-room", rate=1), READ_WARM, "read")
        # Publishes have a bucket of their own: a refused read does not stop them.
        assert attempt(reads.trigger, "still-open", "ev", {}) == (200, {})
        time.sleep(1.5)  # one token back at 1 per second
        assert attempt(reads.users_info, "presence-room") == (200, {"users": []})


# -- HTTP publishes ----------------------------------------------------------------------------


def batch(size: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"channel": f"batch-{i}", "name": "ev", "data": {"i": i}, **extra} for i in range(size)]


def test_publishes_over_the_limit_are_refused_then_allowed_again(nodes: list[VaskServer]) -> None:
    """3 events per second: a batch of 3 spends the whole bucket, so a second one right after is refused."""
    for node in nodes:
        publisher = sdk(node, PUBLISH)
        started = time.monotonic()
        assert attempt(publisher.trigger_batch, batch(3)) == (200, {})
        status, body = attempt(publisher.trigger_batch, batch(3))
        if time.monotonic() - started < 1.0:  # (3 tokens take 1 s to come back)
            assert status == 429, "a batch must cost its event count, not 1"
            assert_rate_refusal(body, PUBLISH, "publish")
        assert_rate_refusal(over_the_limit(publisher.trigger, "one", "ev", {}, rate=3), PUBLISH, "publish")
        # Reads have a bucket of their own (and no limit for this app).
        assert attempt(publisher.channels_info)[0] == 200
        time.sleep(1.5)  # a full bucket again (3 tokens at 3 per second: 1 s)
        assert attempt(publisher.trigger_batch, batch(3)) == (200, {})


def test_first_publish_with_channel_attributes_is_never_refused(nodes: list[VaskServer]) -> None:
    """1 event per second, asking for subscription_count back: on a cluster node the answer needs the shared
    state, after an await; the request is charged once all the same."""
    for node in nodes:
        publisher = sdk(node, PUBLISH_INFO)
        assert attempt(publisher.channels_info)[0] == 200  # the app is cached now (reads are not limited here)
        events = batch(1, info="subscription_count")
        assert attempt(publisher.trigger_batch, events) == (200, {"batch": [{"subscription_count": 0}]})
        assert_rate_refusal(over_the_limit(publisher.trigger_batch, events, rate=1), PUBLISH_INFO, "publish")
        time.sleep(1.5)
        assert attempt(publisher.trigger_batch, events)[0] == 200


# -- client events -----------------------------------------------------------------------------


def client_pair(nodes: list[VaskServer]) -> tuple[RawClient, RawClient]:
    """A sender on the first node and a receiver on the last (another node on a cluster), both subscribed."""
    app = nodes[0].apps[CLIENT["id"]]
    sender, receiver = connect_raw(nodes[0], app.key), connect_raw(nodes[-1], app.key)
    for client in (receiver, sender):
        client.subscribe_private("private-rl", app.key, app.secret)
    return sender, receiver


def received(receiver: RawClient, until: str) -> list[Any]:
    """The ``i`` of every client-burst the receiver got before the ``until`` event (which must come)."""
    got = []
    while (frame := receiver.recv())["event"] != until:
        if frame["event"] == "client-burst":
            got.append(data_of(frame)["i"])
    return got


def assert_nothing_refused(sender: RawClient) -> None:
    """The server handles a connection's frames in order: a pong that comes next means no pusher:error for
    what the sender sent before the ping."""
    sender.send("pusher:ping", {})
    frame = sender.recv()
    assert frame["event"] == "pusher:pong", frame


def test_client_events_over_the_limit_are_refused_then_allowed_again(nodes: list[VaskServer]) -> None:
    """2 client events per second per connection. Over it: a pusher:error 4301 for each event dropped, and
    the connection stays open."""
    sender, receiver = client_pair(nodes)
    try:
        sender.send("client-first", {"n": 1}, "private-rl")
        assert_nothing_refused(sender)
        assert data_of(receiver.expect("client-first")) == {"n": 1}

        started = time.monotonic()
        for i in range(10):
            sender.send("client-burst", {"i": i}, "private-rl")
        elapsed = time.monotonic() - started
        error = sender.expect("pusher:error")
        assert data_of(error)["code"] == 4301, error
        assert data_of(error)["message"] == "Client event rejected: more than 2 per second", error
        assert sender.ping()["event"] == "pusher:pong"  # still open (and every refusal of the burst read)

        time.sleep(1.5)  # tokens back (2 per second)
        sender.send("client-after", {"n": 2}, "private-rl")
        assert_nothing_refused(sender)
        got = received(receiver, "client-after")
        # In order from the first; at most the token left plus what refilled during the burst (+1 at the edges).
        assert got == list(range(len(got))), got
        assert len(got) <= 1 + 2 * elapsed + 1, (got, elapsed)
    finally:
        sender.close()
        receiver.close()
