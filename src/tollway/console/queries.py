"""Read-only queries behind the console's own JSON routes (``tollway.console.data``).

Each takes an optional ``key_id``: ``None`` is the admin's whole-gateway view, a key id
restricts the answer to that key's traffic.  Time series read the daily rollups (a key's,
the key-first one); the generation log reads the ledger by its ``(key_id, created_at)`` /
``created_at`` indexes, newest first, one page at a time, guided by the rollups when
filtered; tasks read ``usage_sessions``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from tollway.ledger.rollups import (
    GATEWAY_BATCH,
    MEASURES,
    day_of,
    usage_daily_app,
    usage_daily_key_model,
    usage_daily_model,
    usage_hourly,
    usage_sessions,
)
from tollway.ledger.schema import generations
from tollway.metering import nano_to_usd


def activity_series(conn: Connection, *, key_id: str | None, start: date, end: date) -> dict[str, Any]:
    """Requests, tokens and cost per day from ``start`` to ``end`` (inclusive), zero-filled.

    One key's days come from the key-first ``usage_daily_key_model`` (its primary key leads
    with the key, so this reads that key's rows only); the whole gateway's from
    ``usage_daily_app``, the smallest daily cube that every record (imports too) enters:
    days x apps, where the model cube has days x models x providers.
    """
    t = usage_daily_key_model if key_id is not None else usage_daily_app
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
    # ORDER BY day LIMIT 1: one seek into a primary key that leads with (key_id, day), or
    # with day for the whole gateway.
    t = usage_daily_key_model if key_id is not None else usage_daily_model
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

Span = tuple[datetime, datetime]  # [start, end) of ledger time to read, newest first


def generation_log(conn: Connection, *, key_id: str | None, model: str | None = None, app: str | None = None,
                   session_id: str | None = None, before: datetime | None = None,
                   limit: int = 50) -> dict[str, Any]:
    """One page of generations, newest first; ``before`` pages back (the last row's ``created_at``).

    A filter looks back :data:`FILTER_WINDOW` from the newest generation in scope (or from
    ``before``) rather than through the whole history.  Within that window, a filter by
    task or model reads only the stretches of ledger time where the rollups say it has
    rows (:func:`_spans`): a task's first to last record, the hours (a key's days) in
    which the model ran.  The page is the same as a scan of the window would give.
    """
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
    spans: list[Span] | None = None
    if model or app or session_id:
        # A filter that matches rarely would walk the key's (or the whole ledger's) history
        # back to its start; look back FILTER_WINDOW from the newest generation in scope.
        newest = before or conn.execute(select(func.max(g.c.created_at)).where(
            *([g.c.key_id == key_id] if key_id is not None else []))).scalar()
        if newest is not None:
            window_start = newest - FILTER_WINDOW
            end = before or newest + timedelta(seconds=1)
            # With the model the only filter the rollups cannot check, every span found holds a
            # row, so the newest ``limit`` spans are enough; with a task or app too, they may not.
            narrowed = _spans(conn, key_id=key_id, model=model, session_id=session_id, start=window_start,
                              end=end, limit=None if app or session_id else limit)
            spans = [(window_start, end)] if narrowed is None else narrowed
    found: list[Any] = []
    if spans is None:
        found = list(conn.execute((query.where(g.c.created_at < before) if before else query).limit(limit)))
    # One range condition per read: given two lower bounds, SQLite ranges its index on the first only.
    for lo, hi in spans or ():
        found.extend(conn.execute(query.where(g.c.created_at >= lo, g.c.created_at < hi).limit(limit - len(found))))
        if len(found) >= limit:
            break
    rows = []
    for r in found:
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


def _spans(conn: Connection, *, key_id: str | None, model: str | None, session_id: str | None,
           start: datetime, end: datetime, limit: int | None) -> list[Span] | None:
    """The stretches of ``[start, end)`` that can hold rows of the filter, newest first, or
    None when no rollup narrows it (an app alone: apps are few and busy, the scan is short).

    * a task: from its first to its last record (``usage_sessions``, any key);
    * a model, for the admin: the hours the model ran (``usage_hourly``, whose primary key
      leads with the hour, so this walks back hour by hour through the small cube);
    * a model, for one key: the days the key ran it (the key-first ``usage_daily_key_model``).

    At most ``limit`` spans of the model (each then holds at least one row, all a page
    needs); adjacent spans are joined, so a busy model's window is one read.
    """
    spans: list[Span] = [(start, end)]
    if limit is not None:
        limit += 1  # the newest hour (day) may hold rows only after ``end``
    if session_id:
        s = usage_sessions
        first, last = conn.execute(select(func.min(s.c.first_seen), func.max(s.c.last_seen))
                                   .where(s.c.session_id == session_id)).one()
        if first is None:
            return []
        spans = _clip(spans, [(max(start, first), min(end, last + timedelta(microseconds=1)))])
    if model:
        if key_id is None:
            h = usage_hourly
            hours = conn.execute(select(h.c.hour).where(h.c.model == model, h.c.batch_id == GATEWAY_BATCH,
                                                        h.c.hour >= start - timedelta(hours=1), h.c.hour < end)
                                 .group_by(h.c.hour).order_by(h.c.hour.desc()).limit(limit)).scalars()
            found = [(at, at + timedelta(hours=1)) for at in map(_as_datetime, hours)]
        else:
            k = usage_daily_key_model
            days = conn.execute(select(k.c.day).where(k.c.key_id == key_id, k.c.model == model,
                                                      k.c.batch_id == GATEWAY_BATCH, k.c.day >= start.date(),
                                                      k.c.day <= end.date())
                                .group_by(k.c.day).order_by(k.c.day.desc()).limit(limit)).scalars()
            found = [(at, at + timedelta(days=1)) for at in (datetime.combine(day_of(d), time()) for d in days)]
        spans = _clip(spans, found)
    return spans if (session_id or model) else None


def _clip(spans: list[Span], within: list[Span]) -> list[Span]:
    """The parts of ``spans`` inside ``within`` (each list disjoint), newest first, adjacent
    parts joined."""
    parts = sorted((max(lo, a), min(hi, b)) for lo, hi in spans for a, b in within if max(lo, a) < min(hi, b))
    out: list[Span] = []
    for lo, hi in parts:
        if out and out[-1][1] >= lo:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out[::-1]


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


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
