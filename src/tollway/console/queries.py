"""Read-only queries behind the console's own JSON routes (``tollway.console.data``).

Each takes an optional ``key_id``: ``None`` is the admin's whole-gateway view, a key id
restricts the answer to that key's traffic.  Time series read the daily rollups; the
generation log reads the ledger by its ``(key_id, created_at)`` / ``created_at`` indexes,
newest first, one page at a time; tasks read ``usage_sessions``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from tollway.ledger.rollups import MEASURES, usage_daily_key, usage_daily_model, usage_sessions
from tollway.ledger.schema import generations
from tollway.metering import nano_to_usd


def activity_series(conn: Connection, *, key_id: str | None, start: date, end: date) -> dict[str, Any]:
    """Requests, tokens and cost per day from ``start`` to ``end`` (inclusive), zero-filled.

    One key's days come from ``usage_daily_key``; the whole gateway's from the smaller
    ``usage_daily_model`` (days x models x providers rather than days x keys).
    """
    t = usage_daily_key if key_id is not None else usage_daily_model
    sums = [func.sum(t.c[name]).label(name) for name in MEASURES]
    query = select(t.c.day, *sums).where(t.c.day >= start, t.c.day <= end).group_by(t.c.day)
    if key_id is not None:
        query = query.where(t.c.key_id == key_id)
    found = {(r.day if isinstance(r.day, date) else date.fromisoformat(str(r.day))): r
             for r in conn.execute(query)}
    days: list[dict[str, Any]] = []
    totals = dict.fromkeys(MEASURES, 0)
    day = start
    while day <= end:
        row = found.get(day)
        values = {name: int(getattr(row, name) or 0) if row is not None else 0 for name in MEASURES}
        for name, value in values.items():
            totals[name] += value
        days.append({"date": day.isoformat(), **values, "cost_usd": nano_to_usd(values["cost_nanousd"])})
        day += timedelta(days=1)
    return {"from": start.isoformat(), "to": end.isoformat(), "scope": "key" if key_id else "all",
            "days": days, "totals": {**totals, "cost_usd": nano_to_usd(totals["cost_nanousd"])}}


def latest_day(conn: Connection, *, key_id: str | None) -> date | None:
    """The last day with traffic in scope (the default end of the console's ranges)."""
    return _edge_day(conn, key_id, last=True)


def first_day(conn: Connection, *, key_id: str | None) -> date | None:
    """The first day with traffic in scope."""
    return _edge_day(conn, key_id, last=False)


def _edge_day(conn: Connection, key_id: str | None, *, last: bool) -> date | None:
    # ORDER BY day LIMIT 1 rather than min/max: the cube's primary key leads with the day,
    # so one key's newest (oldest) day is found by walking from that end until the key shows
    # up, instead of reading every key's days (neither SQLite nor PostgreSQL turns a
    # filtered max() into that walk).
    t = usage_daily_key if key_id is not None else usage_daily_model
    query = select(t.c.day).order_by(t.c.day.desc() if last else t.c.day).limit(1)
    if key_id is not None:
        query = query.where(t.c.key_id == key_id)
    value = conn.execute(query).scalar()
    if value is None:
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


FILTER_WINDOW = timedelta(days=30)

LOG_COLUMNS = ("id", "created_at", "key_id", "model", "provider", "app", "app_title", "session_id",
               "prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens", "cost_nanousd",
               "status", "http_status", "latency_ms", "ttft_ms", "streamed", "attempts")


def generation_log(conn: Connection, *, key_id: str | None, model: str | None = None, app: str | None = None,
                   session_id: str | None = None, before: datetime | None = None,
                   limit: int = 50) -> dict[str, Any]:
    """One page of generations, newest first; ``before`` pages back (the last row's ``created_at``)."""
    g = generations
    window_start: datetime | None = None
    query = select(*(g.c[name] for name in LOG_COLUMNS)).order_by(g.c.created_at.desc(), g.c.id.desc())
    if key_id is not None:
        query = query.where(g.c.key_id == key_id)
    if model:
        query = query.where(g.c.model == model)
    if app:
        query = query.where((g.c.app == app) | (g.c.app_title == app))
    if session_id:
        query = query.where(g.c.session_id == session_id)
    if before is not None:
        query = query.where(g.c.created_at < before)
    if model or app or session_id:
        # A filter that matches rarely would walk the key's (or the whole ledger's) history
        # back to its start; look back FILTER_WINDOW from the newest generation in scope.
        newest = before or conn.execute(select(func.max(g.c.created_at)).where(
            *([g.c.key_id == key_id] if key_id is not None else []))).scalar()
        if newest is not None:
            window_start = newest - FILTER_WINDOW
            query = query.where(g.c.created_at >= window_start)
    rows = []
    for r in conn.execute(query.limit(limit)):
        row = {name: getattr(r, name) for name in LOG_COLUMNS}
        created: datetime = row["created_at"]
        row["created_at"] = created.isoformat() + "Z"
        row["cost_usd"] = nano_to_usd(int(row["cost_nanousd"] or 0))
        row["streamed"] = bool(row["streamed"])
        row["fallbacks"] = _attempt_count(row.pop("attempts")) - 1
        rows.append(row)
    next_before = rows[-1]["created_at"] if len(rows) == limit else None
    if next_before is None and window_start is not None and _any_before(conn, key_id, window_start):
        next_before = window_start.isoformat() + "Z"  # the page ends at the window, not the history
    return {"data": rows, "next_before": next_before}


def _any_before(conn: Connection, key_id: str | None, at: datetime) -> bool:
    g = generations
    query = select(g.c.id).where(g.c.created_at < at)
    if key_id is not None:
        query = query.where(g.c.key_id == key_id)
    return conn.execute(query.limit(1)).first() is not None


def _attempt_count(attempts: Any) -> int:
    """The ledger keeps the attempt list only after a fallback; no list means one attempt."""
    if not attempts:
        return 1
    import orjson

    parsed = orjson.loads(attempts) if isinstance(attempts, str | bytes) else attempts
    return max(1, len(parsed)) if isinstance(parsed, list) else 1


def largest_tasks(conn: Connection, *, key_id: str | None, start: date, end: date,
                  top: int = 20) -> dict[str, Any]:
    """Tasks (``session_id``) first seen in the range, largest first, with their sizes."""
    s = usage_sessions
    tokens = (s.c.prompt_tokens + s.c.completion_tokens).label("tokens")
    where = [s.c.first_seen >= datetime.combine(start, time()),
             s.c.first_seen < datetime.combine(end + timedelta(days=1), time())]
    if key_id is not None:
        where.append(s.c.key_id == key_id)
    count, total = conn.execute(select(func.count(), func.coalesce(func.sum(tokens), 0)).where(*where)).one()
    rows = [{"session_id": r.session_id, "tokens": int(r.tokens), "requests": int(r.requests),
             "cost_nanousd": int(r.cost_nanousd), "cost_usd": nano_to_usd(int(r.cost_nanousd)),
             "first_seen": r.first_seen.isoformat() + "Z", "last_seen": r.last_seen.isoformat() + "Z"}
            for r in conn.execute(select(s.c.session_id, tokens, s.c.requests, s.c.cost_nanousd, s.c.first_seen,
                                         s.c.last_seen).where(*where).order_by(tokens.desc(), s.c.session_id)
                                  .limit(top))]
    return {"from": start.isoformat(), "to": end.isoformat(), "tasks": int(count), "total_tokens": int(total),
            "largest": rows}
