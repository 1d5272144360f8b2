"""OpenRouter's public datasets and per-account activity, from tollway's rollups.

* ``rankings-daily``: top 50 models per day, week or month by prompt + completion tokens,
  plus an ``other`` row per period (the ranking cubes, ``usage_daily_rank`` by day, which
  also hold imported rankings; a ``context_bucket`` or ``category`` filter reads
  ``usage_daily_detail``).
* ``app-rankings``: apps by tokens in the window (popular) or by excess over the mean of
  the three equal windows before it (trending), from ``usage_daily_app``.
* ``session-cost``: median cost per session by harness (app), model and turn range,
  over the 30 days ending yesterday (the per-task cube ``usage_daily_session_model``).
* ``activity``: the caller's per-day, per-model-endpoint usage over the last 30 days.

A key other than the admin's sees only its own traffic: its queries read its slice of the
key-first cube (``usage_daily_key_model``) or, for a context or category filter,
``usage_daily_detail`` filtered to it.
"""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any

from sqlalchemy import BigInteger, Connection, String, cast, func, select, type_coerce, union_all

from tollway.analytics import periods
from tollway.analytics.query import Viewer
from tollway.analytics.rankings import RankingQuery, choose_cube
from tollway.ledger import schema
from tollway.ledger.apps import CATEGORIES, CATEGORY_GROUPS, app_categories, app_titles, known_agent_categories
from tollway.ledger.definitions import CONTEXT_BUCKETS, CONTEXT_TOP
from tollway.ledger.detail import usage_daily_detail, usage_daily_model_detail, usage_daily_session_model
from tollway.ledger.rollups import (
    CUBES,
    GATEWAY_BATCH,
    MEASURES,
    Cube,
    day_of,
    usage_daily_app,
    usage_daily_key_model,
)

DATASET_FLOOR = date(2025, 1, 1)
TOP_MODELS = 50
_PROMPT, _COMPLETION = MEASURES.index("prompt_tokens"), MEASURES.index("completion_tokens")
OTHER = "other"
# rankings-daily's use-case categories -> the app categories whose traffic they cover.
USE_CASES: Mapping[str, tuple[str, ...]] = {
    "programming": CATEGORY_GROUPS["coding"], "roleplay": ("roleplay",), "legal": ("legal",),
    **{name: () for name in ("marketing", "marketing/seo", "technology", "science", "translation", "finance",
                             "health", "trivia", "academia")},
}
MODALITIES = ("text", "image", "image_output", "audio", "tool_calling")
CONTEXT_LABELS = (*(label for label, _ in CONTEXT_BUCKETS), CONTEXT_TOP)
TURN_RANGES = (("1-turn", 1, 1), ("2-9-turns", 2, 9), ("10-49-turns", 10, 49), ("50-plus-turns", 50, None))


class DatasetError(ValueError):
    """Invalid dataset parameters; the message names the parameter."""


def _date(params: Mapping[str, str], name: str) -> date | None:
    value = params.get(name)
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise DatasetError(f"{name}={value!r} is not a date; use YYYY-MM-DD") from None


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = params.get(name)
    if value in (None, ""):
        return default
    assert value is not None
    if not value.lstrip("-").isdigit() or not low <= int(value) <= high:
        raise DatasetError(f"{name}={value!r} must be an integer from {low} to {high}")
    return int(value)


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(name) or None
    if value is not None and value not in allowed:
        raise DatasetError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _window(params: Mapping[str, str], now: datetime) -> tuple[date, date]:
    end = _date(params, "end_date") or now.date() - timedelta(days=1)
    if end < DATASET_FLOOR:
        raise DatasetError(f"end_date={end.isoformat()} is before the dataset's start, {DATASET_FLOOR.isoformat()}")
    start = max(_date(params, "start_date") or end - timedelta(days=30), DATASET_FLOOR)
    if start > end:
        raise DatasetError("start_date must be on or before end_date")
    return start, end


def _meta(start: date, end: date, now: datetime) -> dict[str, str]:
    return {"as_of": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "version": "v1",
            "start_date": start.isoformat(), "end_date": end.isoformat()}


@dataclass(frozen=True, slots=True)
class RankingsParams:
    start: date
    end: date
    period: str
    context_bucket: str | None
    category: str | None
    now: datetime

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime) -> RankingsParams:
        start, end = _window(params, now)
        period = _choice(params, "period", ("day", "week", "month"))
        modality = _choice(params, "modality", MODALITIES)
        context = _choice(params, "context_bucket", CONTEXT_LABELS)
        category = _choice(params, "category", tuple(USE_CASES))
        if _choice(params, "language_type", ("natural", "programming")):
            raise DatasetError("language_type: tollway does not classify languages; remove language_type")
        if modality not in (None, "text"):
            raise DatasetError(f"modality={modality}: tollway records text generations only; use text or omit it")
        if category is not None:
            if context is not None or modality is not None:
                raise DatasetError("category cannot be combined with modality or context_bucket")
            if period == "day":
                raise DatasetError("period=day cannot be combined with category (weekly data); use week or month")
        return cls(start, end, period or ("week" if category else "day"), context, category, now)


def rankings_daily(conn: Connection, p: RankingsParams, viewer: Viewer) -> dict[str, Any]:
    """Top 50 models per period by tokens, then the ``other`` row summing the rest.

    Unfiltered, the rows come from the rankings' own query (:func:`rankings.fetch_grouped`:
    the smallest cube for the range, imports included, a non-admin key's own traffic only);
    a context or category filter reads the analytics cube that has those columns.
    """
    per_period: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if p.context_bucket is None and p.category is None:
        return {"data": _top_models(conn, p, viewer), "meta": _meta(p.start, p.end, p.now)}
    else:
        t = usage_daily_detail
        bucket = periods.bucket_expr(conn.dialect.name, t.c.day, p.period, is_date=True)
        tokens = func.sum(t.c.prompt_tokens + t.c.completion_tokens)
        stmt = select(bucket, t.c.model, tokens).where(t.c.day >= p.start, t.c.day <= p.end)
        if not viewer.is_admin:
            stmt = stmt.where(t.c.key_id == (viewer.key_id or ""))
        if p.context_bucket is not None:
            stmt = stmt.where(t.c.context_bucket == p.context_bucket)
        if p.category is not None:
            wanted = set(USE_CASES[p.category])
            stmt = stmt.where(t.c.app.in_(sorted(a for a, c in app_categories(conn).items() if c in wanted)))
        for day, model, total in conn.execute(stmt.group_by(bucket, t.c.model)):
            per_period[day_of(day)][model] += int(total or 0)
    rows: list[dict[str, Any]] = []
    for day in sorted(per_period):
        rows.extend(_period_rows(day, [(None, model, total) for model, total in per_period[day].items() if total]))
    return {"data": rows, "meta": _meta(p.start, p.end, p.now)}


def _period_rows(period: date, counted: Sequence[tuple[Any, str, int]]) -> list[dict[str, Any]]:
    """One period's rows from its (anything, model, tokens) sums, each model once, in model
    order or not: its top 50 (tokens, then model id) and ``other`` with the rest; none for a
    period without tokens."""
    if not counted:
        return []
    iso = period.isoformat()
    # Two stable sorts in C (by model, then by tokens descending) rather than a heap keyed by
    # a Python lambda: a year by day ranks ~80,000 sums; the first is linear on sorted input.
    top = sorted(sorted(counted, key=_MODEL_OF), key=_TOKENS_OF, reverse=True)[:TOP_MODELS]
    rows = [{"date": iso, "model_permaslug": model, "total_tokens": str(total)} for _, model, total in top]
    rest = sum(map(_TOKENS_OF, counted)) - sum(map(_TOKENS_OF, top))
    rows.append({"date": iso, "model_permaslug": OTHER, "total_tokens": str(rest)})
    return rows


_PERIOD_OF, _MODEL_OF, _TOKENS_OF = itemgetter(0), itemgetter(1), itemgetter(2)


def _merged(rows: list[tuple[Any, str, int]]) -> list[tuple[Any, str, int]]:
    """One period's rows with a model's rows from several import batches summed into one."""
    if len(set(map(_MODEL_OF, rows))) == len(rows):  # the usual case: gateway traffic only
        return rows
    sums: dict[str, int] = defaultdict(int)
    for _, model, tokens in rows:
        sums[model] += tokens
    return [(None, model, tokens) for model, tokens in sums.items()]


_RANK_WORK_MEM = "64MB"


def _top_models(conn: Connection, p: RankingsParams, viewer: Viewer) -> list[dict[str, Any]]:
    """Top 50 per period and the rest over the rankings' own cubes (imports included, a
    non-admin key's own traffic only): a year by day reads the day x model cube
    (``usage_daily_rank``), ~220 rows a day with no provider to group away."""
    query = RankingQuery(by="model", period=p.period, start=p.start, end=p.end,
                         key_id=None if viewer.is_admin else viewer.key_id or "")
    pg = conn.dialect.name == "postgresql"
    segments = _rank_segments(query)
    parts = []
    for cube, lo, hi in segments:
        t = cube.table
        at = t.c[cube.grain]
        assert cube.grain != "hour"  # no app filter here: a daily, weekly or monthly cube
        bucket = at if cube.grain == p.period else periods.bucket_expr(conn.dialect.name, at, p.period, is_date=True)
        tokens = t.c.prompt_tokens + t.c.completion_tokens
        if len(segments) == 1 and cube.grain == p.period and cube.dims == ("model",):
            # One cube whose rows are already one per (period, model) and import batch: its
            # rows in primary-key order, no GROUP BY, ranked in Python (the rare import batch's
            # extra rows summed per period there).  Grouping, sorting and ranking ~80,000 rows
            # in SQL (a year by day) cost both databases more than sending them: side by side
            # over a synthetic year of this cube (load 6.5), PostgreSQL's row_number() path
            # took 264-637 ms, this one 151-381 ms.
            # No ORDER BY: PostgreSQL would sort ~80,000 rows (40-100 ms measured) that come
            # off the table in day order already; Python's sort checks that in one pass.
            plain = select(type_coerce(bucket, String), t.c.model, tokens).where(at >= lo, at <= hi, tokens > 0)
            return _ranked_in_python(conn, plain)
        summed = cast(func.sum(tokens), BigInteger)  # PG: not numeric
        part = select(bucket.label("period"), t.c.model.label("model"), summed.label("tokens")) \
            .where(at >= lo, at <= hi).group_by(bucket, t.c.model)
        if query.key_id is not None:
            part = part.where(t.c.key_id == query.key_id)
        parts.append(part)
    if len(parts) == 1:
        sub = parts[0].subquery("sums")
    else:
        both = union_all(*parts).subquery("parts")
        sub = select(both.c.period, both.c.model, cast(func.sum(both.c.tokens), BigInteger).label("tokens")) \
            .group_by(both.c.period, both.c.model).subquery("sums")
    if pg:
        # Hash aggregate and sort of up to ~80,000 (period, model) sums (a plain key's year by
        # day) in memory, not in temp files (4 MB, the default, spilled both).
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{_RANK_WORK_MEM}'")
        return _ranked_in_sql(conn, sub)
    # SQLite: its window sort of a year by day (~80,000 sums) costs about twice what ranking
    # each period in Python costs here (measured at 10M: 245 vs 130 ms), so the sums come back
    # in period order.  PostgreSQL ranks faster than it can send them.
    return _ranked_in_python(conn, select(type_coerce(sub.c.period, String), sub.c.model, sub.c.tokens)
                             .where(sub.c.tokens > 0).order_by(sub.c.period, sub.c.model))


def _ranked_in_python(conn: Connection, stmt: Any) -> list[dict[str, Any]]:
    """Top 50 per period and the rest from (period, model, tokens) rows, each (period, model)
    once per import batch."""
    # The driver's plain tuples: SQLAlchemy's Row per row (and, on SQLite, a date parsed per
    # row: the period stays ISO text) cost about as much as the query itself for ~80,000 rows.
    # Ties are broken in Python (model ids in code-point order) on both databases.
    rows = sorted(conn.execute(stmt).cursor.fetchall(), key=_PERIOD_OF)  # linear on rows in period order
    out: list[dict[str, Any]] = []
    for period, group in groupby(rows, key=_PERIOD_OF):
        out.extend(_period_rows(day_of(period), _merged(list(group))))
    return out


def _ranked_in_sql(conn: Connection, sub: Any) -> list[dict[str, Any]]:
    """Top 50 per period and the rest, ranked with ``row_number()`` (only kept rows come back)."""
    ranked = select(sub.c.period, sub.c.model, sub.c.tokens,
                    func.row_number().over(partition_by=sub.c.period,
                                           order_by=(sub.c.tokens.desc(), sub.c.model)).label("rank"),
                    func.sum(sub.c.tokens).over(partition_by=sub.c.period).label("total")) \
        .where(sub.c.tokens > 0).subquery("ranked")
    stmt = select(ranked).where(ranked.c.rank <= TOP_MODELS).order_by(ranked.c.period, ranked.c.rank)
    out: list[dict[str, Any]] = []
    last: Any = None
    iso = ""
    kept = everything = 0
    for period, model, total, _rank, whole in conn.execute(stmt).all():  # by period, then rank
        if period != last:
            if last is not None:
                out.append({"date": iso, "model_permaslug": OTHER, "total_tokens": str(everything - kept)})
            last, iso, kept = period, day_of(period).isoformat(), 0
        out.append({"date": iso, "model_permaslug": model, "total_tokens": str(int(total))})
        kept += int(total)
        everything = int(whole)
    if last is not None:
        out.append({"date": iso, "model_permaslug": OTHER, "total_tokens": str(everything - kept)})
    return out


def _rank_segments(query: RankingQuery) -> list[tuple[Cube, date, date]]:
    """The range as (cube, first day, last day): weeks or months wholly inside it from their
    own cube (a year of weeks is ~50 rows per model, not ~365), the days at either end by day."""
    cube = choose_cube(query)
    start, end = query.start, query.end
    assert start is not None and end is not None
    if cube.grain != "day" or query.period not in ("week", "month") or query.key_id is not None:
        return [(cube, start, end)]
    first = periods.floor(start, query.period)
    if first < start:
        first = periods.floor(first + timedelta(days=31 if query.period == "month" else 7), query.period)
    after = periods.floor(end + timedelta(days=1), query.period)  # the period after the last whole one
    if first >= after:
        return [(cube, start, end)]
    whole = next(c for c in CUBES if c.grain == query.period and c.dims == ("model", "provider"))
    out = [(cube, start, first - timedelta(days=1))] if start < first else []
    out.append((whole, first, after - timedelta(days=1)))
    if after <= end:
        out.append((cube, after, end))
    return out


@dataclass(frozen=True, slots=True)
class AppRankingsParams:
    start: date
    end: date
    sort: str
    categories: tuple[str, ...] | None
    limit: int
    offset: int
    now: datetime

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime) -> AppRankingsParams:
        start, end = _window(params, now)
        group = _choice(params, "category", tuple(CATEGORY_GROUPS))
        sub = _choice(params, "subcategory", CATEGORIES)
        if group and sub and sub not in CATEGORY_GROUPS[group]:
            raise DatasetError(f"subcategory={sub} is not in category {group}")
        chosen = (sub,) if sub else CATEGORY_GROUPS[group] if group else None
        return cls(start, end, _choice(params, "sort", ("popular", "trending")) or "popular", chosen,
                   _int(params, "limit", 50, 1, 100), _int(params, "offset", 0, 0, 100), now)


def app_id(app: str) -> int:
    """A stable number for an app (OpenRouter's ``app_id``): the first 6 bytes of its SHA-256."""
    return int.from_bytes(hashlib.sha256(app.encode()).digest()[:6], "big")


def _app_sums(conn: Connection, start: date, end: date, viewer: Viewer) -> dict[str, tuple[int, int]]:
    t = usage_daily_app if viewer.is_admin else usage_daily_key_model
    stmt = select(t.c.app, func.sum(t.c.prompt_tokens + t.c.completion_tokens), func.sum(t.c.requests))
    stmt = stmt.where(t.c.day >= start, t.c.day <= end, t.c.app != "")
    if not viewer.is_admin:  # the key's own gateway traffic: a slice of the key-first cube
        stmt = stmt.where(t.c.key_id == (viewer.key_id or ""), t.c.batch_id == GATEWAY_BATCH)
    return {app: (int(tok or 0), int(req or 0)) for app, tok, req in conn.execute(stmt.group_by(t.c.app))}


def app_rankings(conn: Connection, p: AppRankingsParams, viewer: Viewer) -> dict[str, Any]:
    """Apps ranked by tokens in the window (popular) or by growth over the three windows before (trending)."""
    window = _app_sums(conn, p.start, p.end, viewer)
    if p.categories is not None:
        known, defaults = app_categories(conn), known_agent_categories()
        titles = app_titles(conn)
        window = {a: v for a, v in window.items()
                  if (known.get(a) or defaults.get(titles.get(a, a).lower()) or defaults.get(a.lower()))
                  in p.categories}
    if p.sort == "trending":
        days = (p.end - p.start).days + 1
        before = _app_sums(conn, p.start - timedelta(days=3 * days), p.start - timedelta(days=1), viewer)
        scores = {a: tok - before.get(a, (0, 0))[0] / 3 for a, (tok, _) in window.items()}
        ranked = sorted((a for a in window if scores[a] > 0), key=lambda a: (-scores[a], a))
    else:
        ranked = sorted(window, key=lambda a: (-window[a][0], a))
    titles = app_titles(conn)
    rows = [{"rank": p.offset + i + 1, "app_id": app_id(app), "app_name": titles.get(app, app),
             "total_tokens": str(window[app][0]), "total_requests": window[app][1]}
            for i, app in enumerate(ranked[p.offset:p.offset + p.limit])]
    return {"data": rows, "meta": _meta(p.start, p.end, p.now)}


@dataclass(frozen=True, slots=True)
class SessionCostParams:
    app: str | None
    model: str | None
    turn_range: str | None
    limit: int
    offset: int
    now: datetime

    @classmethod
    def parse(cls, params: Mapping[str, str], now: datetime) -> SessionCostParams:
        return cls(params.get("app_slug") or None, params.get("model") or None,
                   _choice(params, "turn_range", tuple(r[0] for r in TURN_RANGES)),
                   _int(params, "limit", 100, 1, 500), _int(params, "offset", 0, 0, 5000), now)


SESSION_WINDOW_DAYS = 30


def turn_range(turns: int) -> str:
    return next(name for name, low, high in TURN_RANGES if turns >= low and (high is None or turns <= high))


def session_cost(conn: Connection, p: SessionCostParams, viewer: Viewer) -> dict[str, Any]:
    """Median cost per session by (app, model, turn range) over the 30 days ending yesterday.

    A session (``X-Session-Id``) counts under each app and model it used; its turns are its
    requests (those the rollups count: a request refused before any provider is none).  This
    reads the window's days of the per-task cube (``usage_daily_session_model``: a row per
    task, day, app and model), re-summed per task in SQL.
    """
    end = p.now.date() - timedelta(days=1)
    start = end - timedelta(days=SESSION_WINDOW_DAYS - 1)
    t = usage_daily_session_model
    stmt = (select(t.c.app, t.c.model, t.c.session_id, func.sum(t.c.turns), func.sum(t.c.cost_nanousd))
            .where(t.c.day >= start, t.c.day <= end)
            .group_by(t.c.app, t.c.model, t.c.session_id))
    if not viewer.is_admin:
        stmt = stmt.where(t.c.key_id == (viewer.key_id or ""))
    if p.model is not None:
        stmt = stmt.where(t.c.model == p.model)
    titles = app_titles(conn)
    slugs: dict[str, str] = {}  # a month of tasks repeats each app thousands of times
    cells: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for app_value, model, _session, turns, cost in conn.execute(stmt).all():
        if not app_value:
            continue
        slug = slugs.get(app_value)
        if slug is None:
            slug = slugs[app_value] = app_slug(titles.get(app_value, app_value))
        if p.app is not None and slug != p.app:
            continue
        rng = turn_range(int(turns))
        if p.turn_range is not None and rng != p.turn_range:
            continue
        cells[(app_value, model, rng)].append(int(cost or 0))
    order = {name: i for i, (name, _, _) in enumerate(TURN_RANGES)}
    keys = sorted(cells, key=lambda k: (slugs[k[0]], k[1], order[k[2]]))
    rows = [{"app_slug": slugs[a], "app_name": titles.get(a, a), "turn_range": rng,
             "model_permaslug": model, "median_session_cost_usd": statistics.median(cells[(a, model, rng)]) / 1e9}
            for a, model, rng in keys[p.offset:p.offset + p.limit]]
    return {"data": rows, "meta": {"as_of": p.now.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "version": "v1",
                                   "window_days": SESSION_WINDOW_DAYS, "window_end_date": end.isoformat()}}


def app_slug(name: str) -> str:
    """A harness's public slug: its title (or URL host), lower-cased, runs of other characters as ``-``."""
    text = name.split("://", 1)[-1].split("/", 1)[0] if "://" in name else name
    out, dash = [], False
    for ch in text.lower():
        if ch.isalnum():
            out.append(ch)
            dash = False
        elif not dash:
            out.append("-")
            dash = True
    return "".join(out).strip("-")


@dataclass(frozen=True, slots=True)
class ActivityParams:
    day: date | None
    key_hash: str | None
    today: date

    @classmethod
    def parse(cls, params: Mapping[str, str], today: date) -> ActivityParams:
        day = _date(params, "date")
        if day is not None and not today - timedelta(days=30) <= day < today:
            raise DatasetError(f"date={day.isoformat()} is not one of the last 30 completed UTC days")
        if params.get("group_by") not in (None, "", "workspace"):
            raise DatasetError("group_by must be workspace or omitted")
        return cls(day, params.get("api_key_hash") or None, today)


def activity(conn: Connection, p: ActivityParams, viewer: Viewer) -> dict[str, Any]:
    """The caller's usage per day, model and provider (an endpoint) over the last 30 completed days."""
    lo, hi = (p.day, p.day) if p.day else (p.today - timedelta(days=30), p.today - timedelta(days=1))
    key_id = None if viewer.is_admin else viewer.key_id or ""
    if p.key_hash is not None:
        found = conn.execute(select(schema.keys.c.id).where(schema.keys.c.key_hash == p.key_hash)).scalar()
        if key_id is not None and found != key_id:
            return {"data": []}
        if not found:  # an unknown hash matches nothing
            return {"data": []}
        key_id = str(found)
    # One key's endpoints: its slice of the key-first cube; the whole gateway's: day x model x provider.
    t = usage_daily_model_detail if key_id is None else usage_daily_key_model
    stmt = select(t.c.day, t.c.model, t.c.provider, func.sum(t.c.cost_nanousd), func.sum(t.c.requests),
                  func.sum(t.c.prompt_tokens), func.sum(t.c.completion_tokens), func.sum(t.c.reasoning_tokens),
                  func.sum(t.c.cached_tokens))
    stmt = stmt.where(t.c.day >= lo, t.c.day <= hi)
    if key_id is not None:
        stmt = stmt.where(t.c.key_id == key_id, t.c.batch_id == GATEWAY_BATCH)
    stmt = stmt.group_by(t.c.day, t.c.model, t.c.provider).order_by(t.c.day, t.c.model, t.c.provider)
    rows = []
    for day, model, provider, cost, requests, prompt, completion, reasoning, cached in conn.execute(stmt).all():
        rows.append({"date": day_of(day).isoformat(), "model": model, "model_permaslug": model,
                     "endpoint_id": f"{provider}:{model}", "provider_name": provider,
                     "usage": int(cost or 0) / 1e9, "byok_usage_inference": 0.0, "requests": int(requests or 0),
                     "prompt_tokens": int(prompt or 0), "completion_tokens": int(completion or 0),
                     "reasoning_tokens": int(reasoning or 0), "cached_tokens": int(cached or 0)})
    return {"data": rows}
