"""The shared count documents of vask.cluster (pure functions, no store): node counts and their version,
which orders subscription_count announcements that arrive out of order."""

from __future__ import annotations

import time

from vask.cluster.store import set_node_count, total, version
from vask.cluster.sync import drop_node


def test_every_change_raises_the_version_and_no_change_keeps_the_document() -> None:
    one = set_node_count("a", 1)(None)
    assert one is not None and total(one) == 1
    two = set_node_count("b", 1)(one)
    three = set_node_count("a", 2)(two)
    assert total(two) == 2 and total(three) == 3
    assert version(one) < version(two) < version(three)
    assert set_node_count("a", 2)(three) is three  # unchanged: nothing to write, no new version
    fewer = set_node_count("b", 0)(three)
    assert fewer is not None and total(fewer) == 2 and version(fewer) > version(three)


def test_a_dead_nodes_removal_is_a_newer_version_and_the_last_count_deletes() -> None:
    doc = set_node_count("b", 3)(set_node_count("a", 1)(None))
    reaped = drop_node("b")(doc)
    assert reaped is not None and total(reaped) == 1 and version(reaped) > version(doc)
    assert drop_node("a")(reaped) is None and set_node_count("a", 0)(reaped) is None


def test_a_recreated_document_outranks_the_old_one() -> None:
    # Versions follow the clock (ms): announcements of a deleted document still in flight lose to the new one.
    old = {"n": {"a": 2}, "s": int(time.time() * 1000) - 5_000}
    fewer = set_node_count("a", 1)(old)
    assert fewer is not None and version(fewer) >= int(time.time() * 1000) - 1_000
    assert set_node_count("a", 0)(fewer) is None  # the last subscriber left: the document is deleted
    time.sleep(0.002)
    assert version(set_node_count("a", 1)(None)) > version(fewer)
