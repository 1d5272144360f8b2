"""Reporting periods (UTC): day, ISO week (Monday-Sunday), calendar month, or the whole range.

Bucketing happens in SQL so a year of rollups comes back as one row per period and key;
these helpers give the same boundaries in Python for ranges and period-over-period lookups.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import Date, DateTime, cast, func, literal_column
from sqlalchemy.sql.elements import ColumnElement

PERIODS = ("day", "week", "month", "total")


def floor(day: date, period: str) -> date:
    """The first day of the period that contains ``day``."""
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return day


def previous(start: date, period: str) -> date:
    """The start of the period before the one starting at ``start``."""
    if period == "week":
        return start - timedelta(days=7)
    if period == "month":
        return (start - timedelta(days=1)).replace(day=1)
    return start - timedelta(days=1)


def bucket_expr(dialect: str, column: Any, period: str, *, is_date: bool) -> ColumnElement[Any]:
    """SQL for the period start of ``column`` (a rollup's ``day`` or ``hour``), as a date.

    PostgreSQL's ``date_trunc('week', ...)`` already starts weeks on Monday; SQLite has no
    week truncation, so the weekday offset (``%w``: Sunday = 0) is subtracted by hand.
    """
    if dialect == "postgresql":
        if period == "day":
            return column if is_date else cast(column, Date)
        # A date truncates as a timestamp, not (PostgreSQL's implicit cast) a timestamptz: no
        # time-zone arithmetic per row, and no dependence on the session's TimeZone.
        return cast(func.date_trunc(period, cast(column, DateTime) if is_date else column), Date)
    name = f"{column.table.name}.{column.name}"
    if period == "day":
        return literal_column(f"date({name})")
    if period == "week":
        return literal_column(
            f"date({name}, '-' || ((CAST(strftime('%w', {name}) AS INTEGER) + 6) % 7) || ' days')")
    return literal_column(f"strftime('%Y-%m-01', {name})")
