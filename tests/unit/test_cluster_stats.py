"""Lost-envelope detection (vask.cluster.stats): gaps in another node's sequence numbers are counted once."""

from __future__ import annotations

from vask.admin.metrics import render
from vask.cluster.envelopes import Envelope, Terminate
from vask.cluster.stats import ClusterStats


def envelope(origin: str, boot: str = "", number: int = 0) -> Envelope:
    return Envelope(origin, "1", Terminate("u"), boot, number)


def test_gaps_are_counted_per_origin_and_a_restart_is_not_a_gap() -> None:
    stats = ClusterStats()
    for number in (1, 2, 5, 6):  # 3 and 4 never arrived
        stats.received(envelope("a", "boot1", number))
    stats.received(envelope("b", "x", 10))  # the first envelope seen from b: nothing known before it
    stats.received(envelope("b", "x", 11))
    stats.received(envelope("a", "boot2", 1))  # a restarted: its numbers start again
    stats.received(envelope("a", "boot2", 3))
    stats.received(envelope("a", "boot2", 2))  # late or repeated: not a loss, not counted twice
    stats.received(envelope("old"))  # a node without sequence numbers
    assert stats.envelopes_lost == 2 + 1
    assert stats.envelopes_received == 10


def test_sequence_numbers_grow_by_one_and_the_metrics_show_the_counters() -> None:
    stats = ClusterStats()
    assert [stats.next_sequence() for _ in range(3)] == [1, 2, 3]
    stats.envelopes_lost, stats.publishes_refused, stats.healthy = 4, 7, False
    text = render(None, None, stats)
    assert "vask_broker_envelopes_lost_total 4" in text.splitlines()
    assert "vask_broker_publishes_refused_total 7" in text.splitlines()
    assert "vask_broker_healthy 0" in text.splitlines()
    assert "# TYPE vask_broker_envelopes_lost_total counter" in text
