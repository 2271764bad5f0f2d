"""Scale-out with the real SDKs (issue 5): pusher-js 8 clients under Node on different nodes of one cluster, on
the real Redis and NATS, with pusher-http-python publishing through, and querying, the other node.

The raw-client suites (test_cluster*.py) cover every rule in detail; this one checks that the official clients
see the same thing: presence across nodes through pusher-js' own members API, delivery and socket_id exclusion
across nodes, client events, and a SIGKILLed node's member removed exactly once.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from cluster_helpers import NODE_TIMEOUT, Cluster, broker_fixture, cluster_factory_fixture  # noqa: F401
from js_helpers import JsClient, JsHarness, js_fixture, node_env_fixture, wait_until  # noqa: F401

pytestmark = pytest.mark.node

DOC = "presence-doc.42"


def member(user_id: str, name: str) -> dict[str, Any]:
    return {"user_id": user_id, "user_info": {"name": name}}


def got(client: JsClient, event: str, start: int = 0) -> list[Any]:
    return client.received(DOC, event, start)


def test_pusher_js_on_two_nodes(cluster_factory: Any, broker: str, js: JsHarness) -> None:
    cluster: Cluster = cluster_factory(broker)
    a, b = cluster.start(2)
    ann = js.client(a, name="ann@a", presence=member("u1", "Ann"))
    bob = js.client(b, name="bob@b", presence=member("u2", "Bob"))

    # presence across nodes, as pusher-js' channel.members shows it
    ann.subscribe(DOC)
    bob.subscribe(DOC)
    wait_until(lambda: ann.members(DOC)["count"] == 2, what="ann sees bob")
    assert ann.members(DOC)["members"] == {"u1": {"name": "Ann"}, "u2": {"name": "Bob"}}
    assert bob.members(DOC)["members"] == {"u1": {"name": "Ann"}, "u2": {"name": "Bob"}}
    added = ann.wait_for(type="event", channel=DOC, event="pusher:member_added")
    assert added["data"] == {"id": "u2", "info": {"name": "Bob"}}
    assert sorted(u["id"] for u in a.pusher().users_info(DOC)["users"]) == ["u1", "u2"]

    # a publish through node b reaches ann on node a once; bob's own socket_id excludes him on his node
    b.pusher().trigger(DOC, "edit", {"v": 1}, socket_id=bob.socket_id)
    ann.wait_for(type="event", channel=DOC, event="edit")
    a.pusher().trigger(DOC, "marker", {})  # published on the other node: once bob has it, "edit" had its chance
    for client in (ann, bob):
        client.wait_for(type="event", channel=DOC, event="marker")
    assert got(ann, "edit") == [{"v": 1}] and got(bob, "edit") == []

    # client events cross nodes with the sender's user_id (pusher-js' metadata), never echoed
    bob.bind(DOC, "client-cursor")
    assert ann.trigger(DOC, "client-cursor", {"x": 3})
    cursor = bob.wait_for(type="bound", channel=DOC, event="client-cursor")
    assert cursor["data"] == {"x": 3} and cursor["metadata"] == {"user_id": "u1"}
    assert got(ann, "client-cursor") == []

    # node b dies without a goodbye: within the node timeout ann sees bob leave, once
    start = ann.mark()
    b.process.kill()
    killed_at = time.monotonic()
    removed = ann.wait_for(type="event", channel=DOC, event="pusher:member_removed",
                           timeout=NODE_TIMEOUT * 2 + 8)
    assert removed["data"] == {"id": "u2", "info": {"name": "Bob"}}
    assert time.monotonic() - killed_at < NODE_TIMEOUT * 2 + 8
    assert ann.members(DOC)["count"] == 1
    time.sleep(NODE_TIMEOUT)  # another janitor pass would have removed him again by now
    assert len(ann.find(type="event", channel=DOC, event="pusher:member_removed", start=start)) == 1
    assert [u["id"] for u in a.pusher().users_info(DOC)["users"]] == ["u1"]
