"""OpenRouter's analytics query language: its metrics, dimensions, operators and granularities.

:func:`parse_query` turns a ``POST /api/v1/analytics/query`` body into a frozen
:class:`AnalyticsQuery`, or raises :class:`QueryError` naming the field to fix.
:func:`meta` is ``GET /api/v1/analytics/meta``.  Execution is :mod:`tollway.analytics.query`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any


class QueryError(ValueError):
    """An invalid analytics query; the message names the field."""


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    label: str
    display_format: str  # number | currency | percent | latency | throughput
    is_rate: bool = False
    percentile: tuple[str, float] | None = None  # (histogram metric, quantile)


METRICS: Mapping[str, Metric] = MappingProxyType({m.name: m for m in (
    Metric("request_count", "Request Count", "number"),
    Metric("tokens_total", "Total Tokens", "number"),
    Metric("tokens_prompt", "Prompt Tokens", "number"),
    Metric("tokens_completion", "Completion Tokens", "number"),
    Metric("reasoning_tokens", "Reasoning Tokens", "number"),
    Metric("cached_tokens", "Cached Tokens", "number"),
    Metric("total_usage", "Spend", "currency"),
    Metric("usage_cache", "Spend on Cache-Hit Requests", "currency"),
    Metric("avg_latency", "Avg Latency", "latency", True),
    Metric("p50_latency", "P50 Latency", "latency", True, ("latency", 0.5)),
    Metric("p90_latency", "P90 Latency", "latency", True, ("latency", 0.9)),
    Metric("p99_latency", "P99 Latency", "latency", True, ("latency", 0.99)),
    Metric("avg_throughput", "Avg Throughput", "throughput", True),
    Metric("p50_throughput", "P50 Throughput", "throughput", True, ("throughput", 0.5)),
    Metric("p90_throughput", "P90 Throughput", "throughput", True, ("throughput", 0.9)),
    Metric("p99_throughput", "P99 Throughput", "throughput", True, ("throughput", 0.99)),
    Metric("cache_hit_rate", "Cache Hit Rate", "percent", True),
    Metric("error_rate", "Error Rate", "percent", True),
    Metric("fallback_rate", "Fallback Rate", "percent", True),
    Metric("ttft_p50", "P50 Time to First Token", "latency", True, ("ttft", 0.5)),
    Metric("ttft_p90", "P90 Time to First Token", "latency", True, ("ttft", 0.9)),
)})

# Dimension -> label.  ``generation_id``, ``external_user`` and ``task`` are per request:
# answered by a bounded scan of the ledger (windows up to RAW_WINDOW), never from rollups.
DIMENSIONS: Mapping[str, str] = MappingProxyType({
    "model": "Model", "provider": "Provider", "api_key_id": "API Key", "app": "App",
    "country": "Country", "finish_reason": "Finish Reason", "external_user": "External User",
    "context_length_bucket": "Context Length", "generation_id": "Generation",
    "author": "Author", "author_country": "Author Country", "weights": "Weights",
    "provider_country": "Provider Country", "task": "Task", "api": "API", "category": "Category",
})
PER_REQUEST_DIMENSIONS = frozenset({"generation_id", "external_user", "task"})

OPERATORS: Mapping[str, str] = MappingProxyType({
    "eq": "scalar", "neq": "scalar", "in": "array", "not_in": "array",
    "gt": "scalar", "gte": "scalar", "lt": "scalar", "lte": "scalar",
})
GRANULARITIES: Mapping[str, str] = MappingProxyType({
    "minute": "Minute", "hour": "Hour", "day": "Day", "week": "Week", "month": "Month"})
RAW_WINDOW = timedelta(hours=3)
DEFAULT_WINDOW = timedelta(days=30)
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000


def meta() -> dict[str, Any]:
    """The ``/analytics/meta`` document."""
    return {"data": {
        "metrics": [{"name": m.name, "display_label": m.label, "is_rate": m.is_rate,
                     "display_format": m.display_format} for m in METRICS.values()],
        "dimensions": [{"name": name, "display_label": label} for name, label in DIMENSIONS.items()],
        "operators": [{"name": name, "value_type": kind} for name, kind in OPERATORS.items()],
        "granularities": [{"name": name, "display_label": label} for name, label in GRANULARITIES.items()],
    }}


@dataclass(frozen=True, slots=True)
class Filter:
    field: str
    operator: str
    value: Any  # a scalar, or a tuple for in / not_in
    include_unset: bool = False

    def matches(self, value: Any) -> bool:
        op, want = self.operator, self.value
        if value in ("", None):
            if op in ("in", "not_in") and self.include_unset:
                return True
            value = ""
        if op == "eq":
            return bool(_text(value) == _text(want))
        if op == "neq":
            return bool(_text(value) != _text(want))
        if op == "in":
            return _text(value) in {_text(v) for v in want}
        if op == "not_in":
            return _text(value) not in {_text(v) for v in want}
        left, right = _comparable(value, want)
        return bool({"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op])


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _comparable(value: Any, want: Any) -> tuple[Any, Any]:
    try:
        return float(value), float(want)
    except (TypeError, ValueError):
        return str(value), str(want)


@dataclass(frozen=True, slots=True)
class AnalyticsQuery:
    metrics: tuple[str, ...]
    dimensions: tuple[str, ...]
    filters: tuple[Filter, ...]
    granularity: str | None
    start: datetime  # naive UTC
    end: datetime  # naive UTC, exclusive
    order_field: str | None
    descending: bool
    limit: int
    group_limit: int | None

    @property
    def per_request(self) -> bool:
        """Whether it needs the ledger's rows (a per-request dimension, minutes, or hourly
        percentiles: histograms are kept by day)."""
        fields = {*self.dimensions, *(f.field for f in self.filters)}
        return self.granularity == "minute" or bool(fields & PER_REQUEST_DIMENSIONS) or self.hourly_percentiles

    @property
    def hourly_percentiles(self) -> bool:
        return self.granularity == "hour" and any(METRICS[m].percentile is not None for m in self.metrics)


def _naive_utc(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise QueryError(f"{field} must be an ISO 8601 date-time string, e.g. 2026-02-09T00:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(f"{field}={value!r} is not an ISO 8601 date-time, e.g. 2026-02-09T00:00:00Z") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _names(body: Mapping[str, Any], field: str, known: Mapping[str, Any], *, required: bool,
           most: int) -> tuple[str, ...]:
    value = body.get(field)
    if value is None:
        if required:
            raise QueryError(f"{field} is required: a list of names from GET /api/v1/analytics/meta")
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise QueryError(f"{field} must be a list of strings")
    if required and not value:
        raise QueryError(f"{field} must name at least one {field[:-1]}")
    if len(value) > most:
        raise QueryError(f"{field} has {len(value)} entries; at most {most} are allowed")
    for name in value:
        if name not in known:
            raise QueryError(f"{field}: unknown {field[:-1]} {name!r}; see GET /api/v1/analytics/meta")
    if len(set(value)) != len(value):
        raise QueryError(f"{field} lists a name twice")
    return tuple(value)


def _filters(body: Mapping[str, Any]) -> tuple[Filter, ...]:
    raw = body.get("filters")
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > 20:
        raise QueryError("filters must be a list of at most 20 {field, operator, value} objects")
    out = []
    for i, item in enumerate(raw):
        where = f"filters[{i}]"
        if not isinstance(item, dict):
            raise QueryError(f"{where} must be an object with field, operator and value")
        field, op, value = item.get("field"), item.get("operator"), item.get("value")
        if field not in DIMENSIONS:
            raise QueryError(f"{where}.field: unknown dimension {field!r}; see GET /api/v1/analytics/meta")
        if op not in OPERATORS:
            raise QueryError(f"{where}.operator: {op!r} is not one of {', '.join(OPERATORS)}")
        if OPERATORS[str(op)] == "array":
            if not isinstance(value, list) or not value or not all(isinstance(v, str | int | float) for v in value):
                raise QueryError(f"{where}.value: operator {op} takes a non-empty list of strings or numbers")
            value = tuple(value)
        elif isinstance(value, bool) or not isinstance(value, str | int | float):
            raise QueryError(f"{where}.value: operator {op} takes one string or number")
        include_unset = item.get("include_unset", False)
        if not isinstance(include_unset, bool):
            raise QueryError(f"{where}.include_unset must be true or false")
        out.append(Filter(str(field), str(op), value, include_unset))
    return tuple(out)


def _int(body: Mapping[str, Any], field: str, low: int, high: int) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise QueryError(f"{field} must be an integer from {low} to {high:,}")
    return value


def parse_query(body: Any, now: datetime) -> AnalyticsQuery:
    """Validate a query body against OpenRouter's contract (``now``: naive UTC)."""
    if not isinstance(body, dict):
        raise QueryError("the request body must be a JSON object with at least 'metrics'")
    for field in ("classifier_dimensions", "classifier_filters"):
        if body.get(field) is not None:
            raise QueryError(f"{field}: tollway has no classifiers; remove {field}")
    metrics = _names(body, "metrics", METRICS, required=True, most=len(METRICS))
    dimensions = _names(body, "dimensions", DIMENSIONS, required=False, most=2)
    granularity = body.get("granularity")
    if granularity is not None and granularity not in GRANULARITIES:
        raise QueryError(f"granularity: {granularity!r} is not one of {', '.join(GRANULARITIES)}")
    time_range = body.get("time_range")
    if time_range is None:
        end = now
        start = end - (RAW_WINDOW if granularity == "minute" else DEFAULT_WINDOW)
    else:
        if not isinstance(time_range, dict):
            raise QueryError("time_range must be an object with start and end")
        start = _naive_utc(time_range.get("start"), "time_range.start")
        end = _naive_utc(time_range.get("end"), "time_range.end")
        if end <= start:
            raise QueryError("time_range.end must be after time_range.start")
    filters = _filters(body)
    query_fields = {*dimensions, *(f.field for f in filters)}
    hourly = granularity == "hour" and any(METRICS[m].percentile is not None for m in metrics)
    if (granularity == "minute" or query_fields & PER_REQUEST_DIMENSIONS or hourly) and end - start > RAW_WINDOW:
        what = "granularity minute" if granularity == "minute" else \
            f"dimension {sorted(query_fields & PER_REQUEST_DIMENSIONS)[0]}" if query_fields & PER_REQUEST_DIMENSIONS \
            else "granularity hour with percentile metrics (histograms are kept by day; use granularity day)"
        raise QueryError(f"time_range: {what} reads single requests, so the window is at most 3 hours; "
                         "narrow time_range")
    order = body.get("order_by")
    order_field, descending = None, True
    if order is not None:
        if not isinstance(order, dict):
            raise QueryError("order_by must be an object with field and direction")
        order_field = order.get("field")
        time_key = f"date__{granularity}" if granularity else None
        if order_field not in (*metrics, *dimensions, time_key):
            raise QueryError(f"order_by.field: {order_field!r} is not one of the query's metrics, "
                             "dimensions or time column")
        if order.get("direction") not in ("asc", "desc"):
            raise QueryError("order_by.direction must be asc or desc")
        descending = order["direction"] == "desc"
    limit = _int(body, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    group_limit = _int(body, "group_limit", 1, MAX_LIMIT)
    return AnalyticsQuery(metrics, dimensions, filters, granularity, start, end, order_field, descending, limit,
                          group_limit)
