"""Credit-limit reset periods: UTC days, ISO weeks (Monday-Sunday) and calendar months.

A period has an id (used in spend-store keys) and half-open bounds ``[start, end)`` in
naive UTC, the ledger's convention, so "spend in this period" is a plain range query on
``generations.created_at``.  Keys without a reset have one lifetime period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

RESETS = ("daily", "weekly", "monthly")


@dataclass(frozen=True, slots=True)
class Period:
    """One reset window of a key's credit limit (``start``/``end`` None: lifetime)."""

    id: str
    start: datetime | None
    end: datetime | None


LIFETIME = Period(id="all", start=None, end=None)


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def week_start(now: datetime) -> datetime:
    return day_start(now) - timedelta(days=now.weekday())


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(
        month=start.month + 1)


def period_of(reset: str | None, now: datetime) -> Period:
    """The period of a key with this ``limit_reset`` that contains ``now`` (naive UTC)."""
    if reset is None:
        return LIFETIME
    if reset == "daily":
        start = day_start(now)
        return Period(f"d{start:%Y%m%d}", start, start + timedelta(days=1))
    if reset == "weekly":
        start = week_start(now)
        return Period(f"w{start:%Y%m%d}", start, start + timedelta(days=7))
    if reset == "monthly":
        start = month_start(now)
        return Period(f"m{start:%Y%m}", start, _next_month(start))
    raise ValueError(f"limit_reset {reset!r} must be one of {', '.join(RESETS)} or empty")
