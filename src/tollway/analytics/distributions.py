"""Distributions: tokens per request (bucketed) and tokens per task (exact).

Agentic tasks run to hundreds of thousands of tokens while most requests are a few
thousand; means hide that, so reports show p50/p90/p99.

* Per request: from ``usage_daily_request_hist`` (4 log buckets per doubling).  Each
  percentile is reported as the bucket's bounds ``[low, high]`` and a midpoint; the true
  value lies within the bounds.  Imported aggregate rows carry no request sizes and are
  not in the histogram.
* Per task: exact, from ``usage_sessions`` (one row per ``session_id``), ranked in SQL
  with ``ORDER BY ... OFFSET`` so only the percentile rows come back.  A task belongs to
  the period in which it started.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from tollway.ledger.rollups import bucket_bounds, usage_daily_request_hist, usage_sessions
from tollway.metering import nano_to_usd

QUANTILES = (0.5, 0.9, 0.99)
AGENTIC_TASK_TOKENS = 100_000


def nearest_rank(q: float, n: int) -> int:
    """0-based index of the q-quantile among n sorted values (nearest-rank definition)."""
    return min(max(math.ceil(q * n) - 1, 0), n - 1)


def request_distribution(conn: Connection, *, start: date | None = None, end: date | None = None,
                         model: str | None = None, quantiles: Sequence[float] = QUANTILES) -> dict[str, Any]:
    """Bucketed percentiles of tokens (prompt + completion) per request."""
    h = usage_daily_request_hist
    stmt = select(h.c.bucket, func.sum(h.c.requests)).group_by(h.c.bucket).order_by(h.c.bucket)
    if start is not None:
        stmt = stmt.where(h.c.day >= start)
    if end is not None:
        stmt = stmt.where(h.c.day <= end)
    if model is not None:
        stmt = stmt.where(h.c.model == model)
    buckets = [(int(b), int(n)) for b, n in conn.execute(stmt)]
    total = sum(n for _, n in buckets)
    out: dict[str, Any] = {"requests": total, "exact": False, "percentiles": {}}
    for q in quantiles:
        if not total:
            break
        target = nearest_rank(q, total)
        seen = 0
        for bucket, n in buckets:
            seen += n
            if seen > target:
                low, high = bucket_bounds(bucket)
                out["percentiles"][_label(q)] = {"low": low, "high": high, "mid": (low + high) // 2}
                break
    out["histogram"] = [{"low": bucket_bounds(b)[0], "high": bucket_bounds(b)[1], "requests": n}
                        for b, n in buckets]
    return out


def task_distribution(conn: Connection, *, start: date | None = None, end: date | None = None,
                      quantiles: Sequence[float] = QUANTILES, top: int = 10) -> dict[str, Any]:
    """Exact percentiles of tokens per task, the largest tasks, and the agentic share."""
    s = usage_sessions
    tokens = (s.c.prompt_tokens + s.c.completion_tokens).label("tokens")
    where = []
    if start is not None:
        where.append(s.c.first_seen >= datetime.combine(start, time()))
    if end is not None:
        where.append(s.c.first_seen < datetime.combine(end + timedelta(days=1), time()))
    big = (tokens >= AGENTIC_TASK_TOKENS)
    summary = conn.execute(select(
        func.count(), func.coalesce(func.sum(tokens), 0), func.coalesce(func.max(tokens), 0),
        func.coalesce(func.sum(s.c.requests), 0), func.coalesce(func.sum(s.c.cost_nanousd), 0),
        func.coalesce(func.sum(_when(big, tokens)), 0), func.coalesce(func.sum(_when(big, 1)), 0),
    ).where(*where)).one()
    n, total, biggest, requests, cost, big_tokens, big_tasks = (int(v) for v in summary)
    percentiles: dict[str, int] = {}
    for q in quantiles:
        if not n:
            break
        row = conn.execute(select(tokens).where(*where).order_by(tokens, s.c.session_id)
                           .offset(nearest_rank(q, n)).limit(1)).scalar_one()
        percentiles[_label(q)] = int(row)
    largest = [
        {"session_id": r.session_id, "tokens": int(r.tokens), "requests": int(r.requests),
         "cost_nanousd": int(r.cost_nanousd), "cost_usd": nano_to_usd(int(r.cost_nanousd)),
         "first_seen": r.first_seen.isoformat(), "last_seen": r.last_seen.isoformat()}
        for r in conn.execute(select(s.c.session_id, tokens, s.c.requests, s.c.cost_nanousd, s.c.first_seen,
                                     s.c.last_seen).where(*where)
                              .order_by(tokens.desc(), s.c.session_id).limit(top))
    ]
    return {
        "from": start.isoformat() if start else None, "to": end.isoformat() if end else None,
        "tasks": n, "total_tokens": total, "requests": requests, "cost_nanousd": cost,
        "max_tokens": biggest, "exact": True, "percentiles": percentiles,
        "mean_tokens": total / n if n else None,
        "agentic_threshold_tokens": AGENTIC_TASK_TOKENS, "agentic_tasks": big_tasks,
        "agentic_token_share": big_tokens / total if total else None,
        "largest": largest,
    }


def _when(condition: Any, value: Any) -> Any:
    from sqlalchemy import case

    return case((condition, value), else_=0)


def _label(q: float) -> str:
    return f"p{round(q * 100):g}"
