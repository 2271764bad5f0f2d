"""Bill arithmetic and usage reports, shared by `vask bill`, `vask usage` and the admin API.

A statement is: the plan's monthly fee, plus overage on paid plans: the broadcasts above the included
number, priced per million and rounded *up* to a whole cent (1 extra broadcast at $1.00 per million costs
$0.01; exactly 1,000,000 extra cost $1.00). Hard-quota plans (no overage price) are never charged overage;
broadcasts above their quota can only be a cluster's bounded overshoot, and are shown but not billed.

A past month is billed on the plan snapshot written with its usage (the plan the account ended the month
on); the current month on the account's plan now.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vask.billing.base import AccountMonth, AppUsage, BillingStore
from vask.billing.plans import Account, AccountNotFound, Plan, warning_level

MILLION = 1_000_000


def overage_cents(extra_broadcasts: int, cents_per_million: int) -> int:
    """The price of ``extra_broadcasts`` at ``cents_per_million``, rounded up to a whole cent."""
    if extra_broadcasts <= 0 or cents_per_million <= 0:
        return 0
    return -(-extra_broadcasts * cents_per_million // MILLION)  # ceiling division, in integers


def plan_cost(plan: Plan, broadcasts: int) -> int | None:
    """What a month of ``broadcasts`` costs on ``plan`` in cents, or None when its hard quota refuses them."""
    included = plan.included_broadcasts
    if included is None or broadcasts <= included:
        return plan.monthly_fee_cents
    if plan.overage_cents_per_million is None:
        return None
    return plan.monthly_fee_cents + overage_cents(broadcasts - included, plan.overage_cents_per_million)


def money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


@dataclass(frozen=True)
class Statement:
    account_id: str
    account_name: str
    month: str
    plan: str
    fee_cents: int
    included_broadcasts: int | None
    used_broadcasts: int
    overage_broadcasts: int
    overage_cents_per_million: int | None
    overage_cents: int
    peak_connections: int
    connection_limit: int | None
    deliveries: int
    total_cents: int

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["total"] = money(self.total_cents)
        return data

    def render(self) -> str:
        included = "unlimited" if self.included_broadcasts is None else f"{self.included_broadcasts:,}"
        limit = "unlimited" if self.connection_limit is None else f"{self.connection_limit:,}"
        price = ("none (unlimited broadcasts)" if self.included_broadcasts is None
                 else "none (hard quota: refused above it)" if self.overage_cents_per_million is None
                 else f"{money(self.overage_cents_per_million)} per million")
        name = f" ({self.account_name})" if self.account_name else ""
        lines = [
            f"Statement for account {self.account_id}{name}, {self.month} (UTC)",
            f"  Plan                        {self.plan}",
            f"  Plan fee                    {money(self.fee_cents):>16}",
            f"  Included broadcasts         {included:>16}",
            f"  Used broadcasts             {self.used_broadcasts:>16,}",
            f"  Overage broadcasts          {self.overage_broadcasts:>16,}",
            f"  Overage price               {price}",
            f"  Overage                     {money(self.overage_cents):>16}",
            f"  Peak concurrent connections {self.peak_connections:>16,}   (limit {limit})",
            f"  Total                       {money(self.total_cents):>16}",
        ]
        return "\n".join(lines)


def build_statement(account: Account, month: str, plan: Plan, broadcasts: int, deliveries: int,
                    peak_connections: int) -> Statement:
    included = plan.included_broadcasts
    extra = max(0, broadcasts - included) if included is not None else 0
    price = plan.overage_cents_per_million
    overage = overage_cents(extra, price) if price is not None else 0
    return Statement(account.id, account.name, month, plan.name, plan.monthly_fee_cents, included, broadcasts,
                     extra, price, overage, peak_connections, plan.max_connections, deliveries,
                     plan.monthly_fee_cents + overage)


# -- reports -------------------------------------------------------------------------------------


@dataclass
class AccountUsage:
    account: Account
    plan: Plan | None
    month: str
    apps: list[AppUsage] = field(default_factory=list)
    peak_connections: int = 0

    @property
    def broadcasts(self) -> int:
        return sum(row.broadcasts for row in self.apps)

    @property
    def deliveries(self) -> int:
        return sum(row.deliveries for row in self.apps)

    def warnings(self) -> dict[str, int | None]:
        """The 80%/100% flags the dashboard shows: the highest level reached this month, per quota."""
        plan = self.plan
        return {"broadcasts": warning_level(self.broadcasts, plan.included_broadcasts if plan else None),
                "connections": warning_level(self.peak_connections, plan.max_connections if plan else None)}

    def statement(self) -> Statement | None:
        if self.plan is None:
            return None
        return build_statement(self.account, self.month, self.plan, self.broadcasts, self.deliveries,
                               self.peak_connections)

    def to_dict(self, *, fanout: bool = False) -> dict[str, Any]:
        plan = self.plan
        data: dict[str, Any] = {
            "account": self.account.id,
            "name": self.account.name,
            "plan": plan.name if plan else self.account.plan,
            "month": self.month,
            "broadcasts": self.broadcasts,
            "included_broadcasts": plan.included_broadcasts if plan else None,
            "deliveries": self.deliveries,
            "peak_connections": self.peak_connections,
            "connection_limit": plan.max_connections if plan else None,
            "warnings": self.warnings(),
            "apps": [{"app": row.app_id, "broadcasts": row.broadcasts, "deliveries": row.deliveries,
                      "peak_connections": row.peak_connections} for row in self.apps],
        }
        if fanout:
            from vask.billing.calc import from_usage

            data["fanout"] = from_usage(self.broadcasts, self.deliveries).to_dict()
            for app, row in zip(data["apps"], self.apps, strict=True):
                app["fanout"] = from_usage(row.broadcasts, row.deliveries).to_dict()
        return data


def account_usage(store: BillingStore, month: str, current_month: str, *, account_id: str | None = None,
                  app_id: str | None = None) -> list[AccountUsage]:
    """Usage per account in ``month`` from the ledger (blocking). With ``account_id``, that account even when
    it has no usage (AccountNotFound if it does not exist); with ``app_id``, only accounts that app used."""
    accounts = {a.id: a for a in store.list_accounts()}
    plans = {p.name: p for p in store.list_plans()}
    if account_id is not None and account_id not in accounts:
        raise AccountNotFound(f"no account with id {account_id!r} (see `vask accounts list`)")
    rows = store.app_usage(month, account_id, app_id)
    months: dict[str, AccountMonth] = {m.account_id: m for m in store.account_months(month, account_id)}
    ids = sorted({row.account_id for row in rows} | ({account_id} if account_id else set())
                 | (set(months) if app_id is None else set()))
    report = []
    for ident in ids:
        account = accounts.get(ident) or Account(id=ident, name="(deleted account)")
        stored = months.get(ident)
        plan = plans.get(account.plan)
        if month != current_month and stored is not None and stored.plan is not None:
            plan = stored.plan
        report.append(AccountUsage(account, plan, month, [r for r in rows if r.account_id == ident],
                                   stored.peak_connections if stored else 0))
    return report
