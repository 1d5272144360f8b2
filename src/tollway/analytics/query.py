"""``POST /api/v1/analytics/query`` answered from the analytics cubes (:mod:`tollway.ledger.detail`).

A query's time range is cut into whole UTC months and days, read from the monthly and daily
cubes, and the partial days at either end, read from the hourly cubes (so sums are exact to
the hour).  The segments are summed together in SQL (:mod:`tollway.analytics.cube_read`,
which also orders and limits there when it can) over the columns the query's dimensions and
filters derive from; the rows are then resolved (key -> name, app -> title, model ->
author, ...), filtered, merged into the requested granularity and turned into metrics.
Percentiles come from the daily and monthly histograms (4 log buckets per doubling: within
about 12%), so a range's partial days count whole for them.

Per-request dimensions (``generation_id``, ``external_user``, ``task``), minute granularity
and hourly percentiles read the ledger's rows instead, over the ``created_at`` index, for
windows of at most three hours (:data:`~tollway.analytics.query_spec.RAW_WINDOW`); their
metrics are computed with the same definitions.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any

import orjson
from sqlalchemy import Connection, select

from tollway.analytics import cube_read
from tollway.analytics.attribution import Attribution
from tollway.analytics.query_spec import METRICS, AnalyticsQuery, Filter, QueryError
from tollway.ledger import schema
from tollway.ledger.apps import app_categories, app_titles, known_agent_categories
from tollway.ledger.definitions import (
    DETAIL_DIMS,
    DETAIL_MEASURES,
    HIST_BUCKETS,
    MEASURE_NAMES,
    MODEL_DIMS,
    PERF_DIMS,
    PERF_METRICS,
    bucket_bounds,
    perf_buckets,
)
from tollway.ledger.detail import (
    usage_daily_detail,
    usage_daily_hist,
    usage_daily_model_detail,
    usage_hourly_detail,
    usage_monthly_hist,
    usage_monthly_model_detail,
    usage_quarterly_hist,
)
from tollway.ledger.records import COLUMNS, GenerationRecord
from tollway.ledger.rollups import KEY_FIRST, usage_daily_app, usage_daily_key

# Dimension -> the cube column it is derived from.
SOURCE: Mapping[str, str] = {
    "model": "model", "author": "model", "author_country": "model", "weights": "model",
    "provider": "provider", "provider_country": "provider", "app": "app", "category": "app",
    "api_key_id": "key_id", "country": "key_id", "api": "api", "finish_reason": "finish_reason",
    "context_length_bucket": "context_bucket",
    "generation_id": "id", "external_user": "user", "task": "session_id",
}
_PERF_COLUMNS = frozenset(d.name for d in PERF_DIMS)
_MODEL_COLUMNS = frozenset(d.name for d in MODEL_DIMS)
_KEY_MODEL_COLUMNS = frozenset({"key_id", "model", "provider", "app"})
# Metrics the ranking cubes' sums (requests, errors, tokens, cost) answer.
_LEDGER_METRICS = frozenset({"request_count", "tokens_total", "tokens_prompt", "tokens_completion",
                             "reasoning_tokens", "cached_tokens", "total_usage", "error_rate"})
_M = {name: i for i, name in enumerate(MEASURE_NAMES)}


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks: the admin sees every key's traffic, any other key only its own."""

    key_id: str | None
    is_admin: bool


@dataclass(slots=True)
class Labels:
    """Resolves raw cube values to what a row shows (built once per query)."""

    attribution: Attribution
    key_names: dict[str, str]
    titles: dict[str, str]
    categories: dict[str, str]
    agent_defaults: dict[str, str]

    @classmethod
    def load(cls, conn: Connection, attribution: Attribution) -> Labels:
        names = {str(k): str(n) for k, n in conn.execute(select(schema.keys.c.id, schema.keys.c.name))}
        return cls(attribution, names, app_titles(conn), app_categories(conn), known_agent_categories())

    def value(self, dim: str, raw: str) -> str:
        """What row shows for dimension ``dim`` given its source column's value."""
        a = self.attribution
        resolvers: dict[str, Callable[[str], str]] = {
            "author": a.author, "author_country": a.origin, "weights": a.weights,
            "provider_country": a.provider_country, "country": a.user_country,
            "app": lambda v: self.titles.get(v, v), "category": self.category,
        }
        resolve = resolvers.get(dim)
        return resolve(raw) if resolve is not None else raw

    def category(self, app: str) -> str:
        return self.categories.get(app) or self.agent_defaults.get(self.titles.get(app, app).lower()) or \
            self.agent_defaults.get(app.lower()) or ""

    def candidates(self, dim: str, raw: str) -> tuple[str, ...]:
        """The values a filter on ``dim`` may name: keys by id or name, apps by URL or title."""
        if dim == "api_key_id":
            return (raw, self.key_names.get(raw, raw))
        if dim == "app":
            return (raw, self.titles.get(raw, raw))
        return (self.value(dim, raw),)


def _passes(flt: Filter, values: tuple[str, ...]) -> bool:
    if flt.operator in ("neq", "not_in"):
        return all(flt.matches(v) for v in values)
    return any(flt.matches(v) for v in values)


@dataclass(slots=True)
class _Group:
    sums: list[int] = field(default_factory=lambda: [0] * len(MEASURE_NAMES))
    hist: dict[str, list[int]] = field(default_factory=dict)  # metric -> a count per bucket


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    return datetime.fromisoformat(str(value))


def _bucket(at: datetime, granularity: str | None) -> datetime | None:
    if granularity is None:
        return None
    if granularity == "minute":
        return at.replace(second=0, microsecond=0)
    if granularity == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    day = datetime.combine(at.date(), time())
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    return day


def _next_month(day: datetime) -> datetime:
    return (day + timedelta(days=32)).replace(day=1)


def _segments(start: datetime, end: datetime, *, hourly_only: bool, monthly: bool
              ) -> list[tuple[str, datetime, datetime]]:
    """The range as (grain, from, to): hourly at the partial-day ends, daily in between, and
    (``monthly``) monthly over the whole months in the middle."""
    lo = start.replace(minute=0, second=0, microsecond=0)
    hi = end if end == end.replace(minute=0, second=0, microsecond=0) else \
        end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    first_day = datetime.combine(lo.date(), time())
    if first_day < lo:
        first_day += timedelta(days=1)
    last_day = datetime.combine(hi.date(), time())
    if hourly_only or first_day >= last_day:
        return [("hour", lo, hi)]
    out = [("hour", lo, first_day)] if lo < first_day else []
    first_month = first_day if first_day.day == 1 else _next_month(first_day)
    last_month = last_day.replace(day=1)
    if monthly and first_month < last_month:
        if first_day < first_month:
            out.append(("day", first_day, first_month))
        out.append(("month", first_month, last_month))
        if last_month < last_day:
            out.append(("day", last_month, last_day))
    else:
        out.append(("day", first_day, last_day))
    if last_day < hi:
        out.append(("hour", last_day, hi))
    return out


class Answer:
    """Accumulates groups: (time bucket, dimension values) -> sums and histograms."""

    def __init__(self, query: AnalyticsQuery, labels: Labels) -> None:
        self.query = query
        self.labels = labels
        self.groups: dict[tuple[Any, ...], _Group] = {}
        self._buckets: dict[Any, datetime | None] = {}  # a period's rows share a few time values
        self._labels: dict[tuple[str, str], str] = {}
        self.sources = sorted({SOURCE[d] for d in (*query.dimensions, *(f.field for f in query.filters))})

    def _key(self, at: Any, raw: Mapping[str, str]) -> tuple[Any, ...] | None:
        """The group a row falls in, or None if a filter drops it."""
        labels = self.labels
        for flt in self.query.filters:
            if not _passes(flt, labels.candidates(flt.field, raw[SOURCE[flt.field]] or "")):
                return None
        bucket = None
        if self.query.granularity:
            bucket = self._buckets.get(at)
            if bucket is None:
                bucket = self._buckets[at] = _bucket(_as_datetime(at), self.query.granularity)
        return (bucket, *(self._group(d, raw[SOURCE[d]] or "") for d in self.query.dimensions))

    def _group(self, dim: str, raw: str) -> str:
        """A row's group along ``dim``: the raw value, or for a derived dimension (author,
        country, category, ...) its label, so models of one author make one row."""
        if dim in cube_read.RAW_DIMENSIONS:
            return raw
        label = self._labels.get((dim, raw))
        if label is None:
            label = self._labels[(dim, raw)] = self.labels.value(dim, raw)
        return label

    def _cell(self, at: Any, raw: Mapping[str, str]) -> _Group | None:
        """The group a row adds to (created on first use), or None if a filter drops the row."""
        key = self._key(at, raw)
        if key is None:
            return None
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = _Group()
        return group

    def add_sums(self, at: Any, raw: Mapping[str, str], sums: Iterable[int]) -> None:
        group = self._cell(at, raw)
        if group is None:
            return
        group.sums = [a + b for a, b in zip(group.sums, sums, strict=True)]

    def add_hist(self, at: Any, raw: Mapping[str, str], metric: str, counts: Iterable[Any]) -> None:
        """A wide histogram row: ``counts`` per bucket (:data:`HIST_COLUMNS` order)."""
        group = self._cell(at, raw)
        if group is None:
            return
        hist = group.hist.get(metric)
        if hist is None:
            group.hist[metric] = [int(n or 0) for n in counts]
        else:
            group.hist[metric] = [a + int(n or 0) for a, n in zip(hist, counts, strict=True)]

    def add_request(self, at: Any, raw: Mapping[str, str], metric: str, bucket: int) -> None:
        """One request's bucket (the per-request path)."""
        group = self._cell(at, raw)
        if group is None:
            return
        hist = group.hist.get(metric)
        if hist is None:
            hist = group.hist[metric] = [0] * HIST_BUCKETS
        hist[bucket] += 1

    def rows(self) -> tuple[list[dict[str, Any]], bool]:
        """The result rows, ordered and limited; and whether the limit cut some off."""
        q = self.query
        time_key = f"date__{q.granularity}" if q.granularity else None
        out = []
        for key, group in self.groups.items():
            row: dict[str, Any] = {}
            if time_key is not None:
                row[time_key] = key[0].strftime("%Y-%m-%dT%H:%M:%S.000Z")
            for dim, raw in zip(q.dimensions, key[1:], strict=True):
                row[dim] = self.labels.value(dim, raw) if dim == "app" else raw  # derived: a label already
                if dim == "api_key_id":
                    row["api_key_name"] = self.labels.key_names.get(raw, "")
                elif dim == "app":
                    row["app_id"] = raw
            for name in q.metrics:
                row[name] = metric_value(name, group)
            out.append(row)
        order = q.order_field or (q.metrics[0] if not time_key else None)
        if time_key is not None:
            out.sort(key=lambda r: r[time_key])
        if order is not None:
            out.sort(key=lambda r: (r[order] is None, r[order] if r[order] is not None else 0),
                     reverse=q.descending)
            if q.descending:  # keep rows without a value last
                out.sort(key=lambda r: r[order] is None)
        if q.group_limit is not None and q.dimensions:
            seen: dict[tuple[Any, ...], int] = {}
            kept = []
            for r in out:
                dims = tuple(r[d] for d in q.dimensions)
                seen[dims] = seen.get(dims, 0) + 1
                if seen[dims] <= q.group_limit:
                    kept.append(r)
            out = kept
        return out[:q.limit], len(out) > q.limit


def _percentile(hist: Mapping[str, list[int]], metric: str, quantile: float) -> float | None:
    counts = hist.get(metric)
    total = sum(counts) if counts else 0
    if not counts or total == 0:
        return None
    rank = quantile * total
    seen = 0
    chosen = max(i for i, n in enumerate(counts) if n)
    for bucket, n in enumerate(counts):
        if not n:
            continue
        seen += n
        if seen >= rank:
            chosen = bucket
            break
    lo, hi = bucket_bounds(chosen)
    return float(lo + hi) / 2


def _ratio(num: int, den: int, scale: float = 1.0) -> float | None:
    return num * scale / den if den else None


def _sum_metric(*names: str, scale: float | None = None) -> Callable[[list[int]], Any]:
    index = [_M[n] for n in names]
    if scale is None:
        return lambda s: sum(s[i] for i in index)
    return lambda s: sum(s[i] for i in index) * scale


def _rate_metric(num: tuple[str, ...], den: tuple[str, ...], scale: float = 1.0) -> Callable[[list[int]], Any]:
    top, bottom = [_M[n] for n in num], [_M[n] for n in den]

    def rate(s: list[int]) -> float | None:
        d = sum(s[i] for i in bottom)
        return sum(s[i] for i in top) * scale / d if d else None

    return rate


_ALL = ("requests", "errors")
# Each summed or rate metric as a function of a group's sums (MEASURE_NAMES order).
_FROM_SUMS: Mapping[str, Callable[[list[int]], Any]] = MappingProxyType({
    "request_count": _sum_metric(*_ALL),
    "tokens_total": _sum_metric("prompt_tokens", "completion_tokens"),
    "tokens_prompt": _sum_metric("prompt_tokens"),
    "tokens_completion": _sum_metric("completion_tokens"),
    "reasoning_tokens": _sum_metric("reasoning_tokens"),
    "cached_tokens": _sum_metric("cached_tokens"),
    "total_usage": _sum_metric("cost_nanousd", scale=1e-9),
    "usage_cache": _sum_metric("cache_hit_cost", scale=1e-9),
    "avg_latency": _rate_metric(("latency_ms",), ("timed",)),
    "avg_throughput": _rate_metric(("timed_tokens",), ("latency_ms",), 1000.0),
    "cache_hit_rate": _rate_metric(("cache_hits",), ("requests",)),
    "error_rate": _rate_metric(("errors",), _ALL),
    "fallback_rate": _rate_metric(("fallbacks",), _ALL),
})
assert set(_FROM_SUMS) | {m.name for m in METRICS.values() if m.percentile} == set(METRICS)


def metric_value(name: str, group: _Group) -> Any:
    """One metric of a group: sums as integers, money in USD, rates as ratios, percentiles from histograms."""
    metric = METRICS[name]
    if metric.percentile is not None:
        return _percentile(group.hist, *metric.percentile)
    return _FROM_SUMS[name](group.sums)


def run_query(conn: Connection, query: AnalyticsQuery, viewer: Viewer, attribution: Attribution
              ) -> dict[str, Any]:
    """The ``/analytics/query`` document for ``query`` as ``viewer`` may see it."""
    started = clock.perf_counter()
    answer = Answer(query, Labels.load(conn, attribution))
    if query.per_request:
        _from_ledger(conn, query, viewer, answer)
    else:
        _from_cubes(conn, query, viewer, answer)
    rows, truncated = answer.rows()
    took = (clock.perf_counter() - started) * 1000
    return {"data": {"data": rows, "metadata": {"query_time_ms": round(took, 3), "row_count": len(rows),
                                               "truncated": truncated}}}


def _from_cubes(conn: Connection, query: AnalyticsQuery, viewer: Viewer, answer: Answer) -> None:
    wants_sums = any(METRICS[m].percentile is None for m in query.metrics)
    wants_hist = any(METRICS[m].percentile is not None for m in query.metrics)
    if wants_hist and not viewer.is_admin:
        raise QueryError("metrics: percentiles are kept by model and provider over every key's traffic, so only "
                         "the admin key can query them beyond 3 hours; narrow time_range to 3 hours or less, or "
                         "drop the percentile metrics")
    if wants_hist and not set(answer.sources) <= _PERF_COLUMNS:
        extra = sorted(set(answer.sources) - _PERF_COLUMNS)[0]
        field = next(d for d in (*query.dimensions, *(f.field for f in query.filters)) if SOURCE[d] == extra)
        raise_percentile_split(field)
    labels = answer.labels
    where_in, exact = cube_read.pushed_filters(query, labels.key_names, labels.titles, SOURCE)
    key_id = None if viewer.is_admin else viewer.key_id or ""
    one_key = key_id is not None or "key_id" in where_in
    hourly_only = query.granularity == "hour"
    small = viewer.is_admin and set(answer.sources) <= _MODEL_COLUMNS
    monthly = query.granularity in (None, "month")
    sums_tables = {"hour": usage_hourly_detail, "day": usage_daily_model_detail if small else usage_daily_detail,
                   "month": usage_monthly_model_detail}
    if not small and set(query.metrics) <= _LEDGER_METRICS:
        # The ranking cubes by key or by app are far smaller than the full analytics cube; one
        # key's traffic is one slice of the key-first cube.
        for table, column in ((usage_daily_key, "key_id"), (usage_daily_app, "app")):
            if set(answer.sources) <= {column} and (viewer.is_admin or column == "key_id") and not \
                    (one_key and column == "app"):
                sums_tables["day"] = table
        if one_key and set(answer.sources) <= _KEY_MODEL_COLUMNS and sums_tables["day"] is not usage_daily_key:
            sums_tables["day"] = KEY_FIRST.table
    hist_tables = {"day": usage_daily_hist, "month": usage_monthly_hist, "quarter": usage_quarterly_hist}
    # Only the histograms of the metrics asked for (a row per metric).
    hist_where = {**where_in, "metric": frozenset(p[0] for m in query.metrics if (p := METRICS[m].percentile))}
    measures = cube_read.measures_for(query.metrics)
    # Every group is one SQL row, and SQL can order them as the answer does: limit in SQL.
    in_sql = exact and not wants_hist and query.group_limit is None and \
        set(query.dimensions) <= cube_read.RAW_DIMENSIONS and \
        (query.order_field is None or query.order_field in cube_read.SUM_ORDER)
    dialect = conn.dialect.name
    timed = query.granularity is not None
    for lo, hi in cube_read.time_chunks(query):
        if wants_sums:
            segments = [cube_read.Segment(sums_tables[grain], grain, a, b) for grain, a, b in
                        _segments(lo, hi, hourly_only=hourly_only, monthly=monthly and small)]
            parts = [cube_read.segment_select(dialect, seg, answer.sources, query.granularity, where_in, key_id,
                                              perf=False, measures=measures) for seg in segments]
            stmt = cube_read.combined(parts, timed, answer.sources, perf=False, measures=measures)
            if in_sql:
                stmt = cube_read.ordered(stmt, query, timed, answer.sources, query.limit + 1 - len(answer.groups))
            _add_rows(conn, stmt, answer, timed, measures, perf=False)
        if wants_hist:
            lo, hi = _whole_days(lo, hi)  # histograms are kept by day: a range's partial days whole
            signed = _hist_segments(_segments(lo, hi, hourly_only=hourly_only, monthly=monthly), monthly)
            if query.granularity is None:  # a quarter's row answers for its months only when they are not split
                signed = _in_quarters(signed)
            segments = [cube_read.Segment(hist_tables[grain], grain, a, b, sign) for grain, a, b, sign in signed]
            parts = [cube_read.segment_select(dialect, seg, answer.sources, query.granularity, hist_where, key_id,
                                              perf=True, measures=(), grouped=len(segments) == 1)
                     for seg in segments]
            _add_rows(conn, cube_read.combined(parts, timed, answer.sources, perf=True, measures=()), answer, timed,
                      (), perf=True)
        if len(answer.groups) > query.limit:
            break  # time first: the later chunks' rows would all be cut


def _hist_segments(segments: list[tuple[str, datetime, datetime]], monthly: bool
                   ) -> list[tuple[str, datetime, datetime, int]]:
    """Histogram segments, with signs: counts add up exactly, so a run of days that covers most
    of one month is read as the month's row less the month's other days (a year's partial first
    month is then a few days' rows rather than most of a month's)."""
    out: list[tuple[str, datetime, datetime, int]] = []
    for grain, lo, hi in segments:
        if not monthly or grain != "day":
            out.append((grain, lo, hi, 1))
            continue
        a = lo
        while a < hi:  # the run of days, month by month
            month = a.replace(day=1)
            after = _next_month(month)
            b = min(hi, after)
            if (a - month) + (after - b) < b - a:
                out.append(("month", month, after, 1))
                out += [("day", x, y, -1) for x, y in ((month, a), (b, after)) if x < y]
            else:
                out.append(("day", a, b, 1))
            a = b
    return out


def _in_quarters(segments: list[tuple[str, datetime, datetime, int]]) -> list[tuple[str, datetime, datetime, int]]:
    """The whole months of histogram segments regrouped by calendar quarter, with signs as
    :func:`_hist_segments`: a quarter of which most months are in the range is read as the
    quarter's row less its other months (their days in the range, if any, stay as they were)."""
    months: set[datetime] = set()
    out: list[tuple[str, datetime, datetime, int]] = []
    for grain, lo, hi, sign in segments:
        if grain != "month" or sign != 1:
            out.append((grain, lo, hi, sign))
            continue
        while lo < hi:
            months.add(lo)
            lo = _next_month(lo)
    for quarter in sorted({m.replace(month=(m.month - 1) // 3 * 3 + 1) for m in months}):
        three = [quarter, _next_month(quarter), _next_month(_next_month(quarter))]
        inside = [m in months for m in three]
        if sum(inside) >= 2:
            out.append(("quarter", quarter, _next_month(three[2]), 1))
            out += [("month", m, _next_month(m), -1) for m, hit in zip(three, inside, strict=True) if not hit]
        else:
            out += [("month", m, _next_month(m), 1) for m, hit in zip(three, inside, strict=True) if hit]
    return _joined(out)


def _joined(segments: list[tuple[str, datetime, datetime, int]]) -> list[tuple[str, datetime, datetime, int]]:
    """Adjacent segments of one grain and sign as one (fewer SELECTs to re-sum)."""
    out: list[tuple[str, datetime, datetime, int]] = []
    for seg in sorted(segments, key=lambda s: (s[0], s[3], s[1])):
        last = out[-1] if out else None
        if last is not None and last[0] == seg[0] and last[3] == seg[3] and last[2] == seg[1]:
            out[-1] = (last[0], last[1], seg[2], last[3])
        else:
            out.append(seg)
    return out


def _whole_days(lo: datetime, hi: datetime) -> tuple[datetime, datetime]:
    first = datetime.combine(lo.date(), time())
    last = datetime.combine(hi.date(), time())
    return first, last if last == hi else last + timedelta(days=1)


def raise_percentile_split(field: str) -> None:
    raise QueryError(f"dimensions/filters: percentile metrics cannot be split or filtered by {field} "
                     "(their histograms are kept by model and provider); drop the percentile "
                     f"metrics or {field}")


def _add_rows(conn: Connection, stmt: Any, answer: Answer, timed: bool, measures: tuple[str, ...], *,
              perf: bool) -> None:
    sources = answer.sources
    n = len(sources)
    offset = 1 if timed else 0
    index = [_M[m] for m in measures]
    for row in conn.execute(stmt).all():  # fetchall: several times cheaper than row by row
        at = row[0] if timed else None
        raw = dict(zip(sources, row[offset:offset + n], strict=True))
        if perf:
            if any(row[offset + n + 1:]):  # a month less its days may leave a group nothing
                answer.add_hist(at, raw, row[offset + n], row[offset + n + 1:])
        else:
            sums = [0] * len(MEASURE_NAMES)
            for i, value in zip(index, row[offset + n:], strict=True):
                sums[i] = int(value or 0)
            answer.add_sums(at, raw, sums)


def _from_ledger(conn: Connection, query: AnalyticsQuery, viewer: Viewer, answer: Answer) -> None:
    """Per-request answers: the ledger's rows in the window, through the cubes' own definitions
    (only the dimensions, measures and histograms the query reads)."""
    g = schema.generations
    stmt = select(*[g.c[c] for c in COLUMNS]).where(g.c.created_at >= query.start, g.c.created_at < query.end)
    if not viewer.is_admin:
        stmt = stmt.where(g.c.key_id == viewer.key_id)
    dims = [d for d in DETAIL_DIMS if d.name in answer.sources]
    per_request: dict[str, Callable[[GenerationRecord], str]] = {
        "id": lambda r: r.id, "user": lambda r: str((r.extra or {}).get("user") or ""),
        "session_id": lambda r: r.session_id or ""}
    extra = [(name, get) for name, get in per_request.items() if name in answer.sources]
    wanted = set(cube_read.measures_for(query.metrics))
    measures = [(i, m.py) for i, m in enumerate(DETAIL_MEASURES) if m.name in wanted]
    hist = any(METRICS[m].percentile is not None for m in query.metrics)
    for row in conn.execute(stmt).all():
        values = dict(row._mapping)
        for name in ("attempts", "extra"):
            values[name] = orjson.loads(values[name]) if values[name] else None
        record = GenerationRecord(**values)
        raw = {d.name: d.py(record) for d in dims}
        for name, get in extra:
            raw[name] = get(record)
        sums = [0] * len(DETAIL_MEASURES)  # every request is a row, even one with no timing
        for i, py in measures:
            sums[i] = py(record)
        answer.add_sums(record.created_at, raw, sums)
        if hist:
            buckets = perf_buckets(record.status, record.latency_ms, record.ttft_ms, record.completion_tokens)
            for metric, bucket in zip(PERF_METRICS, buckets, strict=True):
                if bucket is not None:
                    answer.add_request(record.created_at, raw, metric, bucket)
