"""Migrations m009_fast_cubes, m010_cheaper_cubes and m011_wide_histograms fill their new tables
from an existing ledger exactly as the writer would have filled them, and drop the tables they
replace (the hourly histogram; the narrow daily and monthly histograms)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, inspect, select, text

from tests.analytics.helpers import db_url, ledger, record, write
from tollway.ledger.db import migrate
from tollway.ledger.definitions import PERF_DIMS, PERF_METRICS, perf_values, token_bucket
from tollway.ledger.detail import (
    usage_daily_hist,
    usage_daily_perf,
    usage_daily_session_model,
    usage_monthly_hist,
    usage_monthly_perf,
)
from tollway.ledger.rollups import GATEWAY_BATCH, enters_rollups, usage_daily_key_model

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
