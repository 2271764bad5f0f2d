"""The shared documents of vask.cluster (pure functions, no store): node counts and their version, which
orders subscription_count announcements that arrive out of order; presence tables; the versioned wire form."""

from __future__ import annotations

import logging
import time

import orjson
import pytest

from vask.cluster import documents as docs
from vask.cluster.documents import Counts, Markers, Presence, Registry, UnreadableDocument
from vask.cluster.store import StoreUnavailable


def total(doc: Counts | None) -> int:
    return doc.total if doc else 0


def version(doc: Counts | None) -> int:
    return doc.seq if doc else 0


def test_every_change_raises_the_version_and_no_change_keeps_the_document() -> None:
    one = docs.set_node_count("a", 1)(None)
    assert one is not None and total(one) == 1
    two = docs.set_node_count("b", 1)(one)
    three = docs.set_node_count("a", 2)(two)
    assert total(two) == 2 and total(three) == 3
    assert version(one) < version(two) < version(three)
    assert docs.set_node_count("a", 2)(three) is three  # unchanged: nothing to write, no new version
    fewer = docs.set_node_count("b", 0)(three)
    assert fewer is not None and total(fewer) == 2 and version(fewer) > version(three)


def test_a_dead_nodes_removal_is_a_newer_version_and_the_last_count_deletes() -> None:
    doc = docs.set_node_count("b", 3)(docs.set_node_count("a", 1)(None))
    reaped = docs.drop_node_counts("b")(doc)
    assert reaped is not None and total(reaped) == 1 and version(reaped) > version(doc)
    assert docs.drop_node_counts("a")(reaped) is None and docs.set_node_count("a", 0)(reaped) is None


def test_a_recreated_document_outranks_the_old_one() -> None:
    # Versions follow the clock (ms): announcements of a deleted document still in flight lose to the new one.
    old = Counts({"a": 2}, int(time.time() * 1000) - 5_000)
    fewer = docs.set_node_count("a", 1)(old)
    assert fewer is not None and version(fewer) >= int(time.time() * 1000) - 1_000
    assert docs.set_node_count("a", 0)(fewer) is None  # the last subscriber left: the document is deleted
    time.sleep(0.002)
    assert version(docs.set_node_count("a", 1)(None)) > version(fewer)


def test_presence_is_refused_beyond_the_limit_and_a_dead_nodes_members_leave() -> None:
    refused: set[str] = set()
    one = docs.set_presence("a", {"ann": (1, {"n": 1})}, 2, refused)(None)
    two = docs.set_presence("b", {"bob": (2, None), "cat": (1, None), "ann": (1, {"n": 2})}, 2, refused)(one)
    assert refused == {"cat"}  # full at two members; ann was already one of them
    assert two is not None and two.infos() == {"ann": {"n": 2}, "bob": None}  # the latest info wins
    assert dict(two.members["ann"].nodes) == {"a": 1, "b": 1}
    after = docs.drop_node_members("b")(two)
    assert after is not None and after.infos() == {"ann": {"n": 2}}
    assert docs.drop_node_members("a")(after) is None


@pytest.mark.parametrize("doc", [Counts({"a": 2, "b": 1}, 17), docs.set_presence("n", {"u": (1, [1])}, 9, set())(None),
                                 Registry(("ch.x", "pr.y")), Markers()])
def test_documents_survive_the_wire_with_their_version(doc: object) -> None:
    raw = docs.dump(doc)  # type: ignore[arg-type]
    assert orjson.loads(raw)["v"] == docs.VERSION
    assert docs.load(type(doc), raw, "k") == doc  # type: ignore[type-var]


def test_a_document_written_before_the_version_field_is_read() -> None:
    assert docs.load(Counts, b'{"n": {"a": 3}, "s": 5}', "k") == Counts({"a": 3}, 5)
    assert docs.load(Presence, b'{"m": {"u": {"n": {"a": 1}, "i": null}}}', "k") == Presence(
        {"u": docs.Member({"a": 1}, None)})


def test_an_unknown_version_or_a_damaged_document_is_refused_once_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="vask.cluster"):
        for _ in range(3):
            with pytest.raises(UnreadableDocument):
                docs.load(Counts, b'{"v": 9, "n": {}}', "ch.future")
        with pytest.raises(UnreadableDocument):
            docs.load(Counts, b'{"n": {"a": "many"}}', "ch.damaged")
        with pytest.raises(StoreUnavailable):  # so callers retry later, as for an outage
            docs.load(Registry, b"[1, 2]", "nk.list")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert "ch.future" in lines[0] and "version 9" in lines[0]
