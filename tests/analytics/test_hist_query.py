"""Percentiles over ranges of partial months, read from the wide histograms (a month less its
other days), against histograms of the ledger's rows computed here."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from tollway.analytics.attribution import Attribution
from tollway.analytics.query import Viewer, _hist_segments, _in_quarters, _segments, run_query
from tollway.analytics.query_spec import parse_query
from tollway.ledger.definitions import bucket_bounds, perf_buckets

from .helpers import db_url, ledger, record, write

__all__ = ["db_url"]


def _expected(records: list, lo: datetime, hi: datetime, quantile: float) -> dict[str, float]:
    buckets: dict[str, list[int]] = {}
    for r in records:
        if lo <= r.created_at < hi and (b := perf_buckets(r.status, r.latency_ms, r.ttft_ms,
                                                          r.completion_tokens)[0]) is not None:
            buckets.setdefault(r.model, []).append(b)
    out = {}
    for model, values in buckets.items():
        values.sort()
        rank = quantile * len(values)
        chosen = next(b for i, b in enumerate(values) if i + 1 >= rank)
        out[model] = sum(bucket_bounds(chosen)) / 2
    return out


def test_percentiles_over_partial_months_match_the_rows(db_url: str) -> None:
    rng = random.Random(11)
    records = []
    at = datetime(2025, 12, 28)
    while at < datetime(2026, 3, 5):
        # c/z runs only on the first two days of January: outside the range, inside its month.
        model = "c/z" if datetime(2026, 1, 1) <= at < datetime(2026, 1, 3) else rng.choice(["a/x", "b/y"])
        records.append(record(len(records), at, model, completion_tokens=rng.randint(1, 900),
                              latency_ms=rng.choice([None, rng.randint(50, 20_000)]),
                              status=rng.choice(["success"] * 9 + ["error"])))
        at += timedelta(minutes=rng.randint(20, 90))
    lo, hi = datetime(2026, 1, 3), datetime(2026, 2, 20)  # most of January, most of February
    with ledger(db_url) as engine:
        write(engine, records, batch_size=101)
        with engine.connect() as conn:
            attribution = Attribution.load(conn, None, with_keys=True)
            for granularity in (None, "month"):
                body = {"metrics": ["p50_latency", "p99_latency"], "dimensions": ["model"],
                        "time_range": {"start": lo.isoformat() + "Z", "end": hi.isoformat() + "Z"}}
                if granularity:
                    body["granularity"] = granularity
                rows = run_query(conn, parse_query(body, hi), Viewer(None, True), attribution)["data"]["data"]
                if granularity is None:
                    assert {r["model"]: r["p50_latency"] for r in rows} == _expected(records, lo, hi, 0.5)
                    assert {r["model"]: r["p99_latency"] for r in rows} == _expected(records, lo, hi, 0.99)
                else:
                    for month, end in ((lo, datetime(2026, 2, 1)), (datetime(2026, 2, 1), hi)):
                        got = {r["model"]: r["p50_latency"] for r in rows
                               if r["date__month"].startswith(month.strftime("%Y-%m"))}
                        assert got == _expected(records, month, end, 0.5)


def test_percentiles_over_quarters_match_the_rows(db_url: str) -> None:
    """A long range reads whole quarters (a quarter less a month outside the range, too), months
    and days at its edges; the answer is the rows' own."""
    rng = random.Random(12)
    records = []
    at = datetime(2025, 9, 20)
    while at < datetime(2026, 7, 10):
        # c/z runs only in September 2025 and June 2026: outside the range, inside its quarters.
        model = "c/z" if at.month in (6, 9) else rng.choice(["a/x", "b/y"])
        records.append(record(len(records), at, model, completion_tokens=rng.randint(1, 900),
                              latency_ms=rng.choice([None, rng.randint(50, 20_000)]),
                              status=rng.choice(["success"] * 9 + ["error"])))
        at += timedelta(minutes=rng.randint(60, 240))
    lo, hi = datetime(2025, 10, 3), datetime(2026, 6, 1)  # most of Q4, Q1, April and May of Q2
    plan = _in_quarters(_hist_segments(_segments(lo, hi, hourly_only=False, monthly=True), True))
    assert ("quarter", datetime(2025, 10, 1), datetime(2026, 7, 1), 1) in plan  # three quarters in one read
    assert ("month", datetime(2026, 6, 1), datetime(2026, 7, 1), -1) in plan
    with ledger(db_url) as engine:
        write(engine, records, batch_size=101)
        with engine.connect() as conn:
            attribution = Attribution.load(conn, None, with_keys=True)
            body = {"metrics": ["p50_latency", "p99_latency"], "dimensions": ["model"],
                    "time_range": {"start": lo.isoformat() + "Z", "end": hi.isoformat() + "Z"}}
            rows = run_query(conn, parse_query(body, hi), Viewer(None, True), attribution)["data"]["data"]
    assert {r["model"]: r["p50_latency"] for r in rows} == _expected(records, lo, hi, 0.5)
    assert {r["model"]: r["p99_latency"] for r in rows} == _expected(records, lo, hi, 0.99)
