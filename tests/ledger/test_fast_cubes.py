"""Migrations m009_fast_cubes, m010_cheaper_cubes, m011_wide_histograms, m012_daily_rank and
m013_quarterly_hist fill their new tables from an existing ledger exactly as the writers (live,
bulk, importer) would have filled them, and drop the tables they replace (the hourly histogram; the narrow daily and
monthly histograms)."""

from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, inspect, select, text

from tests.analytics.helpers import db_url, ledger, record, write
from tollway.analytics.importer import import_usage
from tollway.ledger.bulk import ingest_batch
from tollway.ledger.db import migrate
from tollway.ledger.definitions import PERF_DIMS, PERF_METRICS, perf_values, token_bucket
from tollway.ledger.detail import (
    usage_daily_hist,
    usage_daily_perf,
    usage_daily_session_model,
    usage_monthly_hist,
    usage_monthly_perf,
    usage_quarterly_hist,
)
from tollway.ledger.rollups import GATEWAY_BATCH, enters_rollups, usage_daily_key_model, usage_daily_rank

__all__ = ["db_url"]  # the fixture, used by name

T0 = datetime(2026, 1, 30, 21, 17)  # a month boundary is crossed
NEW = (usage_daily_key_model, usage_daily_session_model)


def _traffic(n: int = 400) -> list[Any]:
    rng = random.Random(5)
    return [record(i, T0 + timedelta(minutes=rng.randint(0, 6 * 1440)), rng.choice(["a/x", "b/y"]),
                   key_id=rng.choice(["k1", "k2", None]), provider=rng.choice(["p1", "p2", None]),
                   app=rng.choice(["https://one.app", None]), app_title=rng.choice(["One", None]),
                   session_id=rng.choice([f"s{rng.randint(0, 9)}", None, ""]),
                   prompt_tokens=rng.randint(0, 9000), completion_tokens=rng.randint(0, 900),
                   cost_nanousd=rng.randint(0, 10**7), status=rng.choice(["success"] * 6 + ["error"]),
                   latency_ms=rng.choice([None, rng.randint(1, 9000)]))
            for i in range(n)]


def _dump(engine: Engine, tables: tuple[Any, ...] = NEW) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(select(t))) for t in tables}


def test_migrations_fill_the_new_cubes_as_the_writer_does(db_url: str) -> None:
    with ledger(db_url) as engine:
        write(engine, _traffic())
        written = _dump(engine)
        assert all(written.values())
        # The ledger as it was before m009/m010: their tables gone and the migrations not applied.
        with engine.begin() as conn:
            for table in NEW:
                table.drop(conn)
            conn.execute(text("DELETE FROM tollway_migrations WHERE name IN ('m009_fast_cubes', 'm010_cheaper_cubes')"))
        assert migrate(engine) == ["m009_fast_cubes", "m010_cheaper_cubes"]
        assert _dump(engine) == written
        with engine.connect() as conn:
            assert "usage_hourly_perf" not in inspect(conn).get_table_names()


def _narrow_histograms(records: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    """m007's daily and monthly histograms of ``records`` as its writer kept them: a row per
    bucket, the bucket unclamped."""
    out: dict[Any, dict[tuple[Any, ...], int]] = {usage_daily_perf: {}, usage_monthly_perf: {}}
    for r in records:
        if not enters_rollups(r):
            continue
        dims = tuple(d.py(r) for d in PERF_DIMS)
        values = perf_values(r.status, r.latency_ms, r.ttft_ms, r.completion_tokens)
        for metric, value in zip(PERF_METRICS, values, strict=True):
            if value is None:
                continue
            for table, period in ((usage_daily_perf, r.created_at.date()),
                                  (usage_monthly_perf, r.created_at.date().replace(day=1))):
                key = (period, *dims, metric, token_bucket(value))
                out[table][key] = out[table].get(key, 0) + 1
    names = ("day", *(d.name for d in PERF_DIMS), "metric", "bucket")
    return {table: [{**dict(zip(("month" if table is usage_monthly_perf else "day", *names[1:]), key,
                                strict=True)), "batch_id": GATEWAY_BATCH, "requests": n}
                    for key, n in cells.items()] for table, cells in out.items()}


def test_m011_pivots_the_narrow_histograms_into_the_wide_rows_the_writer_keeps(db_url: str) -> None:
    traffic = _traffic()
    # Beyond the last bucket (29,360,128 .. 33,554,431 ms): clamped into it by writer and migration alike.
    traffic += [record(1000 + i, T0 + timedelta(hours=i), "a/x", latency_ms=40_000_000 + i * 10**9,
                       completion_tokens=5, ttft_ms=35_000_000) for i in range(3)]
    wide = (usage_daily_hist, usage_monthly_hist)
    with ledger(db_url) as engine:
        write(engine, traffic)
        written = _dump(engine, wide)
        assert all(written.values())
        assert any(row[-1] for row in written["usage_daily_hist"])  # the clamped requests, in b95
        # The ledger as it was before m011: the narrow histograms as m007's writer filled them.
        with engine.begin() as conn:
            for table in wide:
                table.drop(conn)
            for table, rows in _narrow_histograms(traffic).items():
                table.create(conn)
                conn.execute(insert(table), rows)
            conn.execute(text("DELETE FROM tollway_migrations WHERE name = 'm011_wide_histograms'"))
        assert migrate(engine) == ["m011_wide_histograms"]
        assert _dump(engine, wide) == written
        with engine.connect() as conn:
            names = inspect(conn).get_table_names()
        assert "usage_daily_perf" not in names and "usage_monthly_perf" not in names


def _import_files(tmp_path: Path) -> list[tuple[Path, str | None]]:
    """An events file and a weekly aggregate file, overlapping the traffic's days and models."""
    rng = random.Random(11)
    events = tmp_path / "events.csv"
    with events.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["created_at", "model", "provider", "prompt_tokens", "completion_tokens", "cost_nanousd"])
        for _ in range(60):
            at = T0 + timedelta(minutes=rng.randint(0, 6 * 1440))
            out.writerow([at.isoformat(), rng.choice(["a/x", "c/z"]), rng.choice(["p1", "p3", ""]),
                          rng.randint(0, 5000), rng.randint(0, 500), rng.randint(0, 10**6)])
    weekly = tmp_path / "weekly.csv"
    with weekly.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["period_start", "model", "provider", "prompt_tokens", "completion_tokens", "requests",
                      "cost_nanousd"])
        for model, provider in (("a/x", "p1"), ("a/x", "p2"), ("b/y", "")):
            out.writerow(["2026-01-26", model, provider, rng.randint(10**6, 10**9), rng.randint(10**5, 10**8),
                          rng.randint(1, 999), rng.randint(0, 10**9)])
    return [(events, None), (weekly, "week")]


def test_m012_fills_the_day_by_model_cube_as_every_writer_does(db_url: str, tmp_path: Path) -> None:
    """Live writer, bulk writer and both kinds of import each fill ``usage_daily_rank`` through
    the generic cube path; m012 rebuilds the same rows from ``usage_daily_model``."""
    traffic = _traffic()
    with ledger(db_url) as engine:
        write(engine, traffic[:200])  # the live writer's hook
        with engine.begin() as conn:  # the set-based writer
            ingest_batch(conn, traffic[200:])
        for path, period in _import_files(tmp_path):
            assert not import_usage(engine, path, period=period).skipped
        written = _dump(engine, (usage_daily_rank,))["usage_daily_rank"]
        assert {row[2] for row in written} == {GATEWAY_BATCH, 1, 2}  # imports keep their batch
        # Every provider of a (day, model, batch) is summed into its one row.
        expected: dict[tuple[Any, ...], int] = {}
        for r in traffic:
            if enters_rollups(r):
                key = (r.created_at.date(), r.model)
                expected[key] = expected.get(key, 0) + r.prompt_tokens + r.completion_tokens
        with engine.connect() as conn:
            got = {(_day(row.day), row.model): row.prompt_tokens + row.completion_tokens
                   for row in conn.execute(select(usage_daily_rank).where(usage_daily_rank.c.batch_id == 0))}
        assert got == expected
        # The ledger as it was before m012: no day x model cube, the migration not applied.
        with engine.begin() as conn:
            usage_daily_rank.drop(conn)
            conn.execute(text("DELETE FROM tollway_migrations WHERE name = 'm012_daily_rank'"))
        assert migrate(engine) == ["m012_daily_rank"]
        assert _dump(engine, (usage_daily_rank,))["usage_daily_rank"] == written


def _day(value: Any) -> Any:
    return value.date() if isinstance(value, datetime) else value


def test_m013_sums_the_monthly_histograms_by_quarter_as_the_writers_do(db_url: str) -> None:
    """The live writer and the bulk writer fill ``usage_quarterly_hist`` through the generic
    histogram path; m013 rebuilds the same rows from ``usage_monthly_hist``."""
    rng = random.Random(13)
    start = datetime(2025, 12, 20, 5, 3)  # four quarters: 2025 Q4 .. 2026 Q3
    traffic = [record(i, start + timedelta(minutes=rng.randint(0, 200 * 1440)), rng.choice(["a/x", "b/y"]),
                      provider=rng.choice(["p1", "p2", None]), completion_tokens=rng.randint(0, 900),
                      status=rng.choice(["success"] * 6 + ["error"]), ttft_ms=rng.choice([None, rng.randint(1, 900)]),
                      latency_ms=rng.choice([None, rng.randint(1, 9000)]))
               for i in range(400)]
    with ledger(db_url) as engine:
        write(engine, traffic[:200])  # the live writer's hook
        with engine.begin() as conn:  # the set-based writer
            ingest_batch(conn, traffic[200:])
        written = _dump(engine, (usage_quarterly_hist,))["usage_quarterly_hist"]
        assert {_day(row[0]).isoformat() for row in written} == {"2025-10-01", "2026-01-01", "2026-04-01",
                                                                  "2026-07-01"}
        # Each quarter's counts are its months' counts (bucket by bucket).
        with engine.connect() as conn:
            months = conn.execute(select(usage_monthly_hist)).all()
        expected: dict[tuple[Any, ...], list[int]] = {}
        for row in months:
            month = _day(row[0])
            key = (month.replace(month=(month.month - 1) // 3 * 3 + 1), *row[1:5])
            counts = expected.setdefault(key, [0] * len(row[5:]))
            for i, n in enumerate(row[5:]):
                counts[i] += n
        assert {(_day(row[0]), *row[1:5]): list(row[5:]) for row in written} == expected
        # The ledger as it was before m013: no quarterly histograms, the migration not applied.
        with engine.begin() as conn:
            usage_quarterly_hist.drop(conn)
            conn.execute(text("DELETE FROM tollway_migrations WHERE name = 'm013_quarterly_hist'"))
        assert migrate(engine) == ["m013_quarterly_hist"]
        assert _dump(engine, (usage_quarterly_hist,))["usage_quarterly_hist"] == written
