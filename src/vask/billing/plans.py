"""Plans and accounts as data, and the calendar months (UTC) that usage is counted in.

Money is held in integer cents so statements add up exactly. A plan's broadcast quota is *hard* (refused
above it) when the plan has no overage price; with an overage price the account keeps publishing and the
extra broadcasts are billed. The connection limit is a cap on every plan (new connections get 4004).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import BaseModel, Field

DEFAULT_ACCOUNT_ID = "default"  # the account of apps whose account_id is None
FREE, PRO, UNLIMITED = "free", "pro", "unlimited"
WARNING_LEVELS = (80, 100)  # percent of a quota at which the operator is warned, once per month

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
PLAN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"  # short: it is named in WebSocket close reasons
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class Plan(BaseModel):
    name: str = Field(pattern=PLAN_NAME_PATTERN)
    monthly_fee_cents: int = Field(default=0, ge=0)
    included_broadcasts: int | None = Field(default=None, ge=0)  # per month; None: unlimited
    max_connections: int | None = Field(default=None, ge=0)  # summed over the account's apps; None: unlimited
    overage_cents_per_million: int | None = Field(default=None, ge=0)  # None: the broadcast quota is hard
    description: str = ""

    @property
    def hard_quota(self) -> int | None:
        """The broadcasts per month above which publishes are refused, or None when they never are."""
        return self.included_broadcasts if self.overage_cents_per_million is None else None


class Account(BaseModel):
    id: str = Field(pattern=NAME_PATTERN)
    name: str = ""
    plan: str = Field(default=FREE, pattern=PLAN_NAME_PATTERN)


DEFAULT_PLANS: tuple[Plan, ...] = (
    Plan(name=FREE, included_broadcasts=500_000, max_connections=100,
         description="Free tier: 500,000 broadcasts a month, 100 concurrent connections across all apps."),
    # The overage price is the operator's to set (`vask plans set pro --overage-per-million ...`).
    Plan(name=PRO, monthly_fee_cents=1_000, included_broadcasts=10_000_000, max_connections=10_000,
         overage_cents_per_million=100,
         description="$10 a month: 10,000,000 broadcasts and 10,000 concurrent connections included."),
    # Self-hosting operators keep their own apps on this: no quota, nothing billed.
    Plan(name=UNLIMITED, description="No limits and no charge (the default account's plan)."),
)
DEFAULT_ACCOUNT = Account(id=DEFAULT_ACCOUNT_ID, name="Default account", plan=UNLIMITED)


class PlanNotFound(Exception):
    """No plan with that name."""


class AccountNotFound(Exception):
    """No account with that id."""


class AccountExists(Exception):
    """An account with that id is already stored."""


def account_of(account_id: str | None) -> str:
    """The account id usage is counted under; apps without an account belong to the default account."""
    return account_id or DEFAULT_ACCOUNT_ID


# -- months ----------------------------------------------------------------------------------------


def month_of(timestamp: float) -> str:
    """The calendar month (UTC) of a Unix time, as ``YYYY-MM``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def month_start(month: str) -> float:
    """The Unix time at which a ``YYYY-MM`` month starts (UTC)."""
    year, number = parse_month(month)
    return datetime(year, number, 1, tzinfo=UTC).timestamp()


def next_month(month: str) -> str:
    year, number = parse_month(month)
    return f"{year + 1:04d}-01" if number == 12 else f"{year:04d}-{number + 1:02d}"


def parse_month(month: str) -> tuple[int, int]:
    """(year, month) of ``YYYY-MM``; ValueError for anything else."""
    match = _MONTH.match(month)
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 1970:
        raise ValueError(f"invalid month {month!r}: use YYYY-MM, e.g. 2025-06")
    return int(match.group(1)), int(match.group(2))


def warning_level(used: int, limit: int | None) -> int | None:
    """The highest warning level (80 or 100, percent) that ``used`` has reached, or None."""
    if limit is None:
        return None
    reached = None
    for level in WARNING_LEVELS:
        # Integer arithmetic: 80% of a limit is reached at used * 100 >= limit * 80.
        if used * 100 >= limit * level and (limit > 0 or used > 0):
            reached = level
    return reached
