"""A key's spend read from the ledger: per period, and for the /key endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from tollway.ledger import schema
from tollway.limits.periods import Period, day_start, month_start, week_start


def ledger_spend(conn: Connection, key_id: str, period: Period) -> int:
    """Nano-USD the ledger holds for this key in ``period`` (lifetime: the key's total)."""
    if period.start is None or period.end is None:
        value = conn.execute(select(schema.keys.c.usage_nanousd).where(schema.keys.c.id == key_id)).scalar()
        return int(value or 0)
    g = schema.generations
    value = conn.execute(select(func.coalesce(func.sum(g.c.cost_nanousd), 0)).where(
        (g.c.key_id == key_id) & (g.c.created_at >= period.start) & (g.c.created_at < period.end))).scalar()
    return int(value or 0)


def usage_windows(conn: Connection, key_id: str, now: datetime) -> dict[str, int]:
    """Spend of the current UTC day, week (from Monday) and month, and in total, in nano-USD."""
    g = schema.generations
    day, week, month = day_start(now), week_start(now), month_start(now)

    def since(start: datetime) -> Any:
        return func.coalesce(func.sum(case((g.c.created_at >= start, g.c.cost_nanousd), else_=0)), 0)

    row = conn.execute(select(since(day), since(week), since(month)).where(
        (g.c.key_id == key_id) & (g.c.created_at >= min(week, month)))).one()
    total = conn.execute(select(schema.keys.c.usage_nanousd).where(schema.keys.c.id == key_id)).scalar()
    return {"daily": int(row[0]), "weekly": int(row[1]), "monthly": int(row[2]), "total": int(total or 0)}
