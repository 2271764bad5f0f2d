"""The fan-out comparison: broadcasts billed by Vask vs messages billed per delivered copy.

A per-message provider (Pusher's formula, reliability.md "Metering") bills 1 message per publish plus 1 per
delivered copy: one event to 50 subscribers is 51 messages. Vask bills it as 1 broadcast. The figure here is
a lower bound of such a bill: those providers also count client events' copies, presence member_added/removed
and webhooks, which Vask never bills.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from vask.billing.plans import Plan
from vask.billing.statement import money, plan_cost


@dataclass(frozen=True)
class FanoutComparison:
    broadcasts: int  # what Vask bills
    deliveries: int  # delivered copies
    messages: int  # what a per-message provider bills: broadcasts + deliveries

    @property
    def fanout(self) -> float:
        """Average delivered copies per broadcast (subscribers per publish)."""
        return self.deliveries / self.broadcasts if self.broadcasts else 0.0

    @property
    def ratio(self) -> float:
        """How many per-message units one Vask broadcast stands for (1 + fan-out)."""
        return self.messages / self.broadcasts if self.broadcasts else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"broadcasts": self.broadcasts, "deliveries": self.deliveries, "per_message_messages": self.messages,
                "fanout": round(self.fanout, 3), "ratio": round(self.ratio, 3)}


def compare(broadcasts: int, subscribers: int) -> FanoutComparison:
    """``broadcasts`` publishes, each delivered to ``subscribers`` connections."""
    if broadcasts < 0 or subscribers < 0:
        raise ValueError("broadcasts and subscribers must not be negative")
    deliveries = broadcasts * subscribers
    return FanoutComparison(broadcasts, deliveries, broadcasts + deliveries)


def from_usage(broadcasts: int, deliveries: int) -> FanoutComparison:
    """The same comparison for metered traffic."""
    return FanoutComparison(broadcasts, deliveries, broadcasts + deliveries)


def plan_prices(plans: Iterable[Plan], broadcasts: int) -> list[dict[str, Any]]:
    """What a month of ``broadcasts`` costs on each plan (None where the plan's hard quota refuses them)."""
    rows = []
    for plan in sorted(plans, key=lambda p: (p.monthly_fee_cents, p.name)):
        cost = plan_cost(plan, broadcasts)
        rows.append({"plan": plan.name, "cents": cost, "price": money(cost) if cost is not None else None})
    return rows


def render(comparison: FanoutComparison, prices: list[dict[str, Any]]) -> str:
    lines = [
        f"Broadcasts (publishes)              {comparison.broadcasts:>16,}",
        f"Subscribers per broadcast (fan-out) {comparison.fanout:>16,.2f}",
        f"Vask bills                          {comparison.broadcasts:>16,} broadcasts",
        f"A per-message provider bills        {comparison.messages:>16,} messages "
        "(1 per publish + 1 per delivered copy)",
        f"Per-message units per broadcast     {comparison.ratio:>16,.2f}x",
    ]
    if prices:
        lines.append("Monthly price on Vask plans for these broadcasts:")
        lines += [f"  {row['plan']:<20} {row['price'] or 'over its hard quota'}" for row in prices]
    return "\n".join(lines)
