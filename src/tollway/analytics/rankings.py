"""Rankings: token volume by a dimension and period, with rank, share, change and growth.

Two halves: :func:`fetch_grouped` reads the rollups (one SQL ``GROUP BY`` per report, never
the raw ledger) and :func:`build_report` turns grouped rows into the report.  The DuckDB
scanner (``tollway.analytics.scan``) feeds the same ``build_report`` from Parquet files, so
both paths rank, share and round identically.

Sums stay integers end to end; floats appear only in shares, growth rates and USD display.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import BigInteger, Connection, cast, func, select

from tollway.analytics import periods
from tollway.analytics.attribution import (
    AUDIENCE_DIMENSIONS,
    DIMENSIONS,
    SOURCE_COLUMN,
    USER_DIMENSIONS,
    Attribution,
)
from tollway.ledger.rollups import (
    CUBES,
    KEY_FIRST,
    MEASURES,
    Cube,
    day_of,
    usage_daily_app,
    usage_daily_key,
    usage_daily_model,
    usage_daily_rank,
)
from tollway.metering import nano_to_usd

DEFAULT_CONCENTRATION_N = 5
_IDX = {name: i for i, name in enumerate(MEASURES)}


class ReportError(ValueError):
    """A report request that cannot be answered (unknown dimension, bad range)."""


@dataclass(frozen=True, slots=True)
class RankingQuery:
    """What to rank.  ``start``/``end`` are inclusive UTC dates; ``app``/``key_id`` filter."""

    by: str = "model"
    period: str = "week"
    start: date | None = None
    end: date | None = None
    top: int | None = None
    app: str | None = None
    key_id: str | None = None

    def validate(self) -> None:
        if self.by not in DIMENSIONS:
            raise ReportError(f"unknown dimension {self.by!r}; use one of {', '.join(DIMENSIONS)}")
        if self.period not in periods.PERIODS:
            raise ReportError(f"unknown period {self.period!r}; use one of {', '.join(periods.PERIODS)}")
        if self.start and self.end and self.start > self.end:
            raise ReportError(f"--from {self.start} is after --to {self.end}")
        if self.top is not None and self.top < 1:
            raise ReportError("--top must be at least 1")


# (period start, raw dimension value, key id for user counts or "", measures in MEASURES order)
GroupedRow = tuple[date, str, str, Sequence[int]]


def previous_range(query: RankingQuery) -> RankingQuery | None:
    """The whole period before the range's first one, read only to rank against."""
    if query.start is None or query.period == "total":
        return None
    first = periods.floor(query.start, query.period)
    return replace(query, start=periods.previous(first, query.period), end=first - timedelta(days=1))


def _aligned(query: RankingQuery, grain: str) -> bool:
    """Whether the range is whole ``grain`` periods, so that cube can answer it exactly."""
    if query.period != grain:
        return False
    start, end = query.start, query.end
    if grain == "week":
        return (start is None or start.weekday() == 0) and (end is None or end.weekday() == 6)
    return (start is None or start.day == 1) and (end is None or (end + timedelta(days=1)).day == 1)


def choose_cube(query: RankingQuery) -> Cube:
    """The smallest rollup that answers ``query`` exactly."""
    if query.key_id is not None:
        return KEY_FIRST  # key first: one key's slice of a daily cube with every dimension
    if query.app is not None:
        return CUBES[0]  # hourly, the only other cube with every dimension
    if query.by in ("app",):
        return next(c for c in CUBES if c.table is usage_daily_app)
    if query.by in AUDIENCE_DIMENSIONS:
        return next(c for c in CUBES if c.table is usage_daily_key)
    for grain in ("week", "month"):
        if _aligned(query, grain):
            return next(c for c in CUBES if c.grain == grain)
    if SOURCE_COLUMN.get(query.by) == "model":  # model, author, origin, weights: no provider needed
        return next(c for c in CUBES if c.table is usage_daily_rank)
    return next(c for c in CUBES if c.table is usage_daily_model)


def fetch_grouped(conn: Connection, query: RankingQuery) -> list[GroupedRow]:
    """Grouped rows for the range, plus the period before it (for rank change and growth).

    The range is clipped exactly at ``start``/``end``, so a first period that starts before
    ``start`` holds only the days in range; the previous period is read whole.
    """
    query.validate()
    before = previous_range(query)
    return (_fetch(conn, before) if before is not None else []) + _fetch(conn, query)


def _fetch(conn: Connection, query: RankingQuery) -> list[GroupedRow]:
    """One aggregate query over the smallest rollup that answers ``query``."""
    cube = choose_cube(query)
    table = cube.table
    time_col = table.c[cube.grain]
    is_date = cube.grain != "hour"
    dim = table.c[SOURCE_COLUMN[query.by]]
    # Distinct users (keys) per row: the key cube has them; the key itself is one user.
    count_users = query.by == "user-country"
    cols: list[Any] = [dim, table.c.key_id] if count_users else [dim]
    if query.period == "total":
        bucket: Any = func.min(time_col)
        group: list[Any] = list(cols)
    elif query.period == cube.grain:
        bucket = time_col
        group = [bucket, *cols]
    else:
        bucket = periods.bucket_expr(conn.dialect.name, time_col, query.period, is_date=is_date)
        group = [bucket, *cols]
    # Cast: PostgreSQL's sum of bigints is numeric; as bigint both drivers hand back ints.
    stmt = select(bucket, *cols, *[cast(func.sum(table.c[m]), BigInteger) for m in MEASURES]).group_by(*group)
    start = query.start
    if start is not None:
        stmt = stmt.where(time_col >= (start if is_date else datetime.combine(start, time())))
    if query.end is not None:
        if is_date:
            stmt = stmt.where(time_col <= query.end)
        else:
            stmt = stmt.where(time_col < datetime.combine(query.end + timedelta(days=1), time()))
    if query.app is not None:
        stmt = stmt.where(table.c.app == query.app)
    if query.key_id is not None:
        stmt = stmt.where(table.c.key_id == query.key_id)
    out: list[GroupedRow] = []
    first = 1 + len(cols)
    for row in conn.execute(stmt).all():  # fetchall: several times cheaper than row by row
        raw = str(row[1])
        key_id = str(row[2]) if count_users else (raw if query.by == "key" else "")
        out.append((day_of(row[0]), raw, key_id, row[first:]))  # a group's sums are never NULL
    if query.period == "total" and out:
        first_day = query.start or min(r[0] for r in out)
        out = [(first_day, raw, k, m) for _, raw, k, m in out]
    return out


@dataclass(slots=True)
class _Cell:
    measures: list[int]
    users: set[str]


def _aggregate(rows: Iterable[GroupedRow], resolve: Callable[[str], str],
               period: str) -> dict[date, dict[str, _Cell]]:
    cells: dict[date, dict[str, _Cell]] = {}
    resolved: dict[str, str] = {}  # a year of weeks repeats each model ~52 times
    floors: dict[date, date] = {}
    for start, raw, key_id, measures in rows:
        key = resolved.get(raw)
        if key is None:
            key = resolved[raw] = resolve(raw)
        first = floors.get(start)
        if first is None:
            first = floors[start] = periods.floor(start, period) if period != "total" else start
        bucket = cells.setdefault(first, {})
        cell = bucket.get(key)
        if cell is None:  # most rows are a cell of their own: no add loop
            bucket[key] = _Cell(list(measures), {key_id} if key_id else set())
            continue
        cell.measures = [a + b for a, b in zip(cell.measures, measures, strict=True)]
        if key_id:
            cell.users.add(key_id)
    return cells


def _tokens(m: Sequence[int]) -> int:
    return m[_IDX["prompt_tokens"]] + m[_IDX["completion_tokens"]]


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def measure_fields(m: Sequence[int]) -> dict[str, Any]:
    """The measures of one cell as report fields (integers, plus derived floats for display)."""
    total = _tokens(m)
    cost = m[_IDX["cost_nanousd"]]
    requests = m[_IDX["requests"]]
    return {
        "total_tokens": total,
        "prompt_tokens": m[_IDX["prompt_tokens"]],
        "completion_tokens": m[_IDX["completion_tokens"]],
        "reasoning_tokens": m[_IDX["reasoning_tokens"]],
        "cached_tokens": m[_IDX["cached_tokens"]],
        "requests": requests,
        "errors": m[_IDX["errors"]],
        "cost_nanousd": cost,
        "cost_usd": nano_to_usd(cost),
        # nano-dollars per token x 1e6 tokens / 1e9 nano per USD = USD per million tokens.
        "usd_per_mtok": cost / total / 1000 if total and cost else None,  # None: no cost recorded
        "cache_hit_share": _ratio(m[_IDX["cached_tokens"]], m[_IDX["prompt_tokens"]]),
        "tokens_per_request": _ratio(total, requests),
    }


def build_report(rows: Iterable[GroupedRow], query: RankingQuery,
                 resolve: Callable[[str], str]) -> dict[str, Any]:
    """Rank keys within each period; add share, rank change, growth and concentration."""
    cells = _aggregate(rows, resolve, query.period)
    first_out = periods.floor(query.start, query.period) if query.start and query.period != "total" else None
    concentration_n = query.top or DEFAULT_CONCENTRATION_N
    out_rows: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    ranked: dict[date, dict[str, tuple[int, int]]] = {}  # period -> key -> (rank, tokens)
    for start in sorted(cells):
        bucket = cells[start]
        order = sorted(bucket, key=lambda k: (-_tokens(bucket[k].measures), k))
        ranked[start] = {k: (i + 1, _tokens(bucket[k].measures)) for i, k in enumerate(order)}
        if first_out is not None and start < first_out:
            continue  # read only to rank the first reported period against
        totals = [sum(c.measures[i] for c in bucket.values()) for i in range(len(MEASURES))]
        period_tokens = _tokens(totals)
        all_users = set().union(*(c.users for c in bucket.values()))
        prev = ranked.get(periods.previous(start, query.period)) if query.period != "total" else None
        prev_total = sum(t for _, t in prev.values()) if prev else 0
        top_tokens = sum(ranked[start][k][1] for k in order[:concentration_n])
        summaries.append({
            "period_start": start.isoformat(), **measure_fields(totals), "keys": len(order),
            "users": len(all_users) if query.by in USER_DIMENSIONS else None,
            "change": _ratio(period_tokens - prev_total, prev_total) if prev else None,
            "top_n": concentration_n, "top_n_share": _ratio(top_tokens, period_tokens),
        })
        for key in order[: query.top] if query.top else order:
            cell = bucket[key]
            rank, tokens = ranked[start][key]
            before = prev.get(key) if prev else None
            row = {"period_start": start.isoformat(), "key": key, **measure_fields(cell.measures),
                   "share": _ratio(tokens, period_tokens), "rank": rank,
                   "prev_rank": before[0] if before else None,
                   "rank_change": before[0] - rank if before else None,
                   "change": _ratio(tokens - before[1], before[1]) if before else None}
            if query.by in USER_DIMENSIONS:
                row["users"] = len(cell.users)
                row["user_share"] = _ratio(len(cell.users), len(all_users))
            out_rows.append(row)
    return {
        "period": query.period, "by": query.by,
        "from": query.start.isoformat() if query.start else None,
        "to": query.end.isoformat() if query.end else None,
        "rows": out_rows, "periods": summaries,
        "growth": _growth(out_rows, query.period),
    }


def _growth(rows: list[dict[str, Any]], period: str) -> list[dict[str, Any]]:
    """Per key: growth from its first to its last reported period, and compounded per period."""
    if period == "total":
        return []
    spans: dict[str, list[tuple[date, int]]] = {}
    for row in rows:
        point = (date.fromisoformat(row["period_start"]), row["total_tokens"])
        spans.setdefault(row["key"], []).append(point)
    out = []
    for key, points in spans.items():
        points.sort()
        (first_day, first), (last_day, last) = points[0], points[-1]
        steps = _periods_between(first_day, last_day, period)
        growth = _ratio(last - first, first)
        compound = (last / first) ** (1 / steps) - 1 if first and steps else None
        out.append({"key": key, "first_period": first_day.isoformat(), "last_period": last_day.isoformat(),
                    "first_tokens": first, "last_tokens": last, "growth": growth,
                    "compound_growth_per_period": compound})
    return out


def _periods_between(first: date, last: date, period: str) -> int:
    if period == "week":
        return (last - first).days // 7
    if period == "month":
        return (last.year - first.year) * 12 + last.month - first.month
    return (last - first).days


def rankings(conn: Connection, query: RankingQuery, attribution: Attribution) -> dict[str, Any]:
    """The rankings report from the rollups."""
    return build_report(fetch_grouped(conn, query), query, attribution.resolver(query.by))
