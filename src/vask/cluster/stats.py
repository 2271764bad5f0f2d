"""Counters of this node's traffic on the broker, and the detection of envelopes that never arrived.

Every envelope a node sends carries its boot id and a sequence number (``b``, ``q``) that grows by one per
envelope. A receiver that sees a node's number jump from n to n + k knows that k - 1 envelopes from it were
lost on the way: a broker restart (Redis pub/sub and core NATS deliver at most once, and nothing is delivered
to a node that has not resubscribed yet) or the sender's queue overflowing during a long outage. Those
losses are counted, so they show in ``/metrics`` instead of going unseen. A node that restarts has a new boot
id, so its numbers starting again from 1 are not a loss.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from vask.cluster.envelopes import Envelope


@dataclass(slots=True)
class ClusterStats:
    boot: str = field(default_factory=lambda: secrets.token_hex(3))
    sequence: int = 0
    envelopes_sent: int = 0  # handed to the broker
    envelopes_received: int = 0  # from other nodes
    envelopes_lost: int = 0  # gaps in other nodes' sequences
    envelopes_dropped: int = 0  # not sent: the outgoing queue was full during an outage
    publishes_refused: int = 0  # HTTP publishes answered 503 while the broker or shared store was away
    healthy: bool = True
    last_seen: dict[str, tuple[str, int]] = field(default_factory=dict)  # origin node → (boot, last number)

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence

    def received(self, envelope: Envelope) -> None:
        """Count an envelope from another node, and the envelopes it reveals as lost."""
        self.envelopes_received += 1
        boot, number, origin = envelope.boot, envelope.seq, envelope.origin
        if not boot or number <= 0:
            return  # a node of an older version: nothing to check
        seen = self.last_seen.get(origin)
        if seen is not None and seen[0] == boot:
            if number <= seen[1]:
                return  # older than what was seen (never expected; not counted twice)
            self.envelopes_lost += number - seen[1] - 1
        if len(self.last_seen) > 10_000:  # bounded: node ids that restart under new names
            self.last_seen.clear()
        self.last_seen[origin] = (boot, number)

    def as_dict(self) -> dict[str, int]:
        return {"envelopes_sent": self.envelopes_sent, "envelopes_received": self.envelopes_received,
                "envelopes_lost": self.envelopes_lost, "envelopes_dropped": self.envelopes_dropped,
                "publishes_refused": self.publishes_refused, "healthy": int(self.healthy)}
