"""Every rollup's dimensions and measures, defined once for the live and bulk paths.

Each value a rollup keeps is an :class:`Expr`: a Python function of a
:class:`~tollway.ledger.records.GenerationRecord` (the live writer's path, which sums a
batch in Python) and the SQL that computes the same value from a staged row (the bulk path,
``INSERT ... SELECT ... GROUP BY``).  The ranking cubes (:mod:`tollway.ledger.rollups`), the
bulk statements (:mod:`tollway.ledger.bulk`) and the analytics cubes
(:mod:`tollway.ledger.detail`) all read these rows, so a new dimension or measure is one
row here (plus its column, in a migration); the tests compare the two paths table by table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tollway.ledger.records import GenerationRecord


def token_bucket(tokens: int) -> int:
    """Log bucket of a token count: exact below 8, then 4 buckets per power of two.

    Integer-only (bit length plus the two bits after the leading one), so it is the same
    on every platform and never drifts with float rounding.
    """
    if tokens < 8:
        return max(tokens, 0)
    shift = tokens.bit_length() - 3
    return shift * 4 + (tokens >> shift)


def bucket_bounds(bucket: int) -> tuple[int, int]:
    """Smallest and largest token count that fall in ``bucket`` (inclusive)."""
    if bucket < 8:
        return bucket, bucket
    shift = bucket // 4 - 1
    top = bucket % 4 + 4
    return top << shift, ((top + 1) << shift) - 1


@dataclass(frozen=True, slots=True)
class Expr:
    """One value derived from a generation: in Python (live path) and in SQL (bulk path)."""

    name: str
    py: Callable[[GenerationRecord], Any]
    sql: str
    length: int = 0  # for text dimensions: the column's length


# Context buckets as OpenRouter's rankings name them: the prompt size they are at most.
CONTEXT_BUCKETS = (("1K", 1_000), ("10K", 10_000), ("100K", 100_000), ("1M", 1_000_000))
CONTEXT_TOP = "10M"


def context_bucket(prompt_tokens: int) -> str:
    """OpenRouter's context-length bucket of a request's prompt size."""
    for label, limit in CONTEXT_BUCKETS:
        if prompt_tokens <= limit:
            return label
    return CONTEXT_TOP


_CONTEXT_SQL = ("CASE " + " ".join(f"WHEN prompt_tokens <= {limit} THEN '{label}'" for label, limit in
                                   CONTEXT_BUCKETS) + f" ELSE '{CONTEXT_TOP}' END")


def _ok(r: GenerationRecord) -> bool:
    return r.status != "error"


DETAIL_DIMS = (
    Expr("model", lambda r: r.model, "model", 200),
    Expr("provider", lambda r: r.provider or "", "coalesce(provider, '')", 100),
    Expr("app", lambda r: r.app or r.app_title or "", "coalesce(nullif(app, ''), nullif(app_title, ''), '')", 500),
    Expr("key_id", lambda r: r.key_id or "", "coalesce(key_id, '')", 40),
    Expr("api", lambda r: r.api or "", "coalesce(api, '')", 20),
    Expr("finish_reason", lambda r: r.finish_reason or "", "coalesce(finish_reason, '')", 40),
    Expr("context_bucket", lambda r: context_bucket(r.prompt_tokens), _CONTEXT_SQL, 8),
)
# Histograms multiply a cube's rows by their buckets, so they are kept by model and provider
# only (percentiles by model, author, origin, weights, provider, hosting country); a year of
# them then stays small enough to answer in well under a second.
PERF_DIMS = DETAIL_DIMS[:2]
MODEL_DIMS = DETAIL_DIMS[:2]

_TIMED = "CASE WHEN status <> 'error' AND latency_ms IS NOT NULL THEN 1 ELSE 0 END"
_WITH_TTFT = "CASE WHEN status <> 'error' AND ttft_ms IS NOT NULL THEN 1 ELSE 0 END"
DETAIL_MEASURES = (
    Expr("requests", lambda r: 1 if _ok(r) else 0, "CASE WHEN status = 'error' THEN 0 ELSE 1 END"),
    Expr("errors", lambda r: 0 if _ok(r) else 1, "CASE WHEN status = 'error' THEN 1 ELSE 0 END"),
    Expr("prompt_tokens", lambda r: r.prompt_tokens, "prompt_tokens"),
    Expr("completion_tokens", lambda r: r.completion_tokens, "completion_tokens"),
    Expr("reasoning_tokens", lambda r: r.reasoning_tokens, "reasoning_tokens"),
    Expr("cached_tokens", lambda r: r.cached_tokens, "cached_tokens"),
    Expr("cache_write_tokens", lambda r: r.cache_write_tokens, "cache_write_tokens"),
    Expr("cost_nanousd", lambda r: r.cost_nanousd, "cost_nanousd"),
    # The ledger keeps the attempt list only when a fallback happened.
    Expr("fallbacks", lambda r: 1 if r.attempts else 0, "CASE WHEN attempts IS NOT NULL THEN 1 ELSE 0 END"),
    Expr("cache_hits", lambda r: 1 if r.cached_tokens > 0 else 0, "CASE WHEN cached_tokens > 0 THEN 1 ELSE 0 END"),
    Expr("cache_hit_cost", lambda r: r.cost_nanousd if r.cached_tokens > 0 else 0,
         "CASE WHEN cached_tokens > 0 THEN cost_nanousd ELSE 0 END"),
    Expr("timed", lambda r: 1 if _ok(r) and r.latency_ms is not None else 0, _TIMED),
    Expr("latency_ms", lambda r: r.latency_ms or 0 if _ok(r) else 0,
         "CASE WHEN status <> 'error' THEN coalesce(latency_ms, 0) ELSE 0 END"),
    Expr("timed_tokens", lambda r: r.completion_tokens if _ok(r) and r.latency_ms is not None else 0,
         f"CASE WHEN {_TIMED} = 1 THEN completion_tokens ELSE 0 END"),
    Expr("with_ttft", lambda r: 1 if _ok(r) and r.ttft_ms is not None else 0, _WITH_TTFT),
    Expr("ttft_ms", lambda r: r.ttft_ms or 0 if _ok(r) else 0,
         "CASE WHEN status <> 'error' THEN coalesce(ttft_ms, 0) ELSE 0 END"),
)
MEASURE_NAMES = tuple(m.name for m in DETAIL_MEASURES)
# The per-task cube (session-cost): a task's turns and cost by day, app and model.
SESSION_DIMS = (Expr("session_id", lambda r: r.session_id or "", "coalesce(session_id, '')", 200),
                DETAIL_DIMS[2], DETAIL_DIMS[0], DETAIL_DIMS[3])  # app, model, key_id
SESSION_MEASURES = (Expr("turns", lambda r: 1, "1"), DETAIL_MEASURES[7])  # every request of the task; cost
# The sums every ranking cube keeps (rollups.MEASURES), the first of DETAIL_MEASURES.
LEDGER_MEASURES = DETAIL_MEASURES[:8]
DIMENSIONS = {d.name: d for d in DETAIL_DIMS}


def perf_values(status: str, latency_ms: int | None, ttft_ms: int | None, completion_tokens: int
                ) -> tuple[int | None, int | None, int | None]:
    """A request's latency (ms), throughput (completion tokens/s) and TTFT (ms), or None where it
    has none: errors have none, throughput needs a non-zero latency.  Integer arithmetic only."""
    if status == "error":
        return None, None, None
    throughput = completion_tokens * 1000 // latency_ms if latency_ms else None
    return latency_ms, throughput, ttft_ms


PERF_METRICS = ("latency", "throughput", "ttft")  # in perf_values order


# A histogram row keeps one count column per bucket (``b0`` .. ``b95``: m011_wide_histograms).
# Bucket 95 holds 29,360,128 .. 33,554,431 (ms, or tokens/s); anything larger is clamped into it.
HIST_BUCKETS = 96
HIST_COLUMNS = tuple(f"b{i}" for i in range(HIST_BUCKETS))


def perf_buckets(status: str, latency_ms: int | None, ttft_ms: int | None, completion_tokens: int
                 ) -> tuple[int | None, int | None, int | None]:
    """:func:`perf_values` as histogram buckets (:func:`token_bucket`, values above the last
    bucket's range clamped into it: :data:`HIST_BUCKETS`): the bulk path stages these."""
    top = HIST_BUCKETS - 1
    return tuple(None if v is None else min(token_bucket(v), top)  # type: ignore[return-value]
                 for v in perf_values(status, latency_ms, ttft_ms, completion_tokens))


PERF_STAGE_COLUMNS = tuple(f"{m}_bucket" for m in PERF_METRICS)
