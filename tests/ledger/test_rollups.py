"""Rollups kept by the ledger writer's hook agree with the raw ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, select

from tests.analytics.helpers import db_url, ledger, record, write
from tollway.ledger import schema
from tollway.ledger.records import GenerationRecord
from tollway.ledger.rollups import (
    MEASURES,
    bucket_bounds,
    enters_rollups,
    token_bucket,
    usage_daily_app,
    usage_daily_key,
    usage_daily_model,
    usage_daily_rank,
    usage_daily_request_hist,
    usage_hourly,
    usage_monthly_model,
    usage_sessions,
    usage_weekly_model,
)

__all__ = ["db_url"]

T0 = datetime(2026, 2, 9, 0, 30)


def _records(n: int = 300, seed: int = 7) -> list[GenerationRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = rng.choice([0, 5, 900, 12_000, 180_000])
        cached = rng.randint(0, prompt)
        completion = rng.randint(0, 4000)
        status = rng.choice(["success"] * 8 + ["error", "cancelled"])
        out.append(record(
            i, T0 + timedelta(minutes=rng.randint(0, 3 * 24 * 60)), rng.choice(["a/x", "b/y", "c/z"]),
            provider=rng.choice(["p1", "p2", None]), app=rng.choice(["https://app.one", None]),
            app_title=rng.choice(["Title", None]), key_id=rng.choice(["k1", "k2", None]),
            session_id=rng.choice([f"s{rng.randint(0, 20)}", None]), prompt_tokens=prompt,
            completion_tokens=completion, cached_tokens=cached, reasoning_tokens=completion // 3,
            cache_write_tokens=rng.randint(0, prompt - cached),
            cost_nanousd=rng.randint(0, 10**9), status=status))
    return out


def _expected(records: list[GenerationRecord], dims: tuple[str, ...]) -> dict[tuple[object, ...], list[int]]:
    acc: dict[tuple[object, ...], list[int]] = defaultdict(lambda: [0] * len(MEASURES))
    for r in filter(enters_rollups, records):  # requests rejected before any attempt are not usage
        day = r.created_at.date()
        values = {"hour": r.created_at.replace(minute=0, second=0, microsecond=0), "day": day,
                  "week": day - timedelta(days=day.weekday()), "month": date(day.year, day.month, 1),
                  "model": r.model, "provider": r.provider or "", "app": r.app or r.app_title or "",
                  "key_id": r.key_id or "", "batch_id": 0}
        m = acc[tuple(values[d] for d in dims)]
        error = r.status == "error"
        for i, v in enumerate((0 if error else 1, 1 if error else 0, r.prompt_tokens, r.completion_tokens,
                               r.reasoning_tokens, r.cached_tokens, r.cache_write_tokens, r.cost_nanousd)):
            m[i] += v
    return dict(acc)


def _table(conn: Connection, table: Table, dims: Sequence[str]) -> dict[tuple[Any, ...], list[int]]:
    out = {}
    for row in conn.execute(select(table)):
        m = row._mapping
        key = tuple(m[d].date() if d != "hour" and isinstance(m[d], datetime) else m[d] for d in dims)
        out[key] = [int(m[c]) for c in MEASURES]
    return out


def test_token_buckets_cover_every_count_in_order() -> None:
    previous = -1
    for n in sorted({*range(0, 5000), *(int(1.37**k) for k in range(20, 90))}):
        bucket = token_bucket(n)
        low, high = bucket_bounds(bucket)
        assert low <= n <= high
        assert bucket >= previous  # larger requests never land in a lower bucket
        previous = bucket
        # A bucket is at most a quarter of its lower bound wide, so a percentile is within ~12%.
        assert high - low + 1 <= max(1, low // 4 + 1)


def test_hook_rollups_equal_the_ledger(db_url: str) -> None:
    records = _records()
    with ledger(db_url) as engine:
        write(engine, records)
        with engine.connect() as conn:
            n = conn.execute(select(schema.generations.c.id)).all()
            assert len(n) == len(records)
            for table, dims in ((usage_hourly, ("hour", "model", "provider", "app", "key_id", "batch_id")),
                                (usage_daily_model, ("day", "model", "provider", "batch_id")),
                                (usage_daily_rank, ("day", "model", "batch_id")),
                                (usage_weekly_model, ("week", "model", "provider", "batch_id")),
                                (usage_monthly_model, ("month", "model", "provider", "batch_id")),
                                (usage_daily_key, ("day", "key_id", "batch_id")),
                                (usage_daily_app, ("day", "app", "batch_id"))):
                assert _table(conn, table, dims) == _expected(records, dims), table.name
            # Tokens-per-request histogram: every non-error request, in its own bucket.
            hist: dict[tuple[object, ...], int] = defaultdict(int)
            for r in filter(enters_rollups, records):
                if r.status != "error":
                    hist[(r.created_at.date(), r.model, token_bucket(r.prompt_tokens + r.completion_tokens))] += 1
            got_hist = {}
            for row in conn.execute(select(usage_daily_request_hist)):
                day = row.day.date() if isinstance(row.day, datetime) else row.day
                got_hist[(day, row.model, row.bucket)] = row.requests
            assert got_hist == dict(hist)
            # Sessions: exact sums and first/last seen per session_id.
            sessions: dict[str, list[GenerationRecord]] = defaultdict(list)
            for r in filter(enters_rollups, records):
                if r.session_id:
                    sessions[r.session_id].append(r)
            rows = {row.session_id: row for row in conn.execute(select(usage_sessions))}
            assert set(rows) == set(sessions)
            for sid, rs in sessions.items():
                assert rows[sid].prompt_tokens == sum(r.prompt_tokens for r in rs)
                assert rows[sid].completion_tokens == sum(r.completion_tokens for r in rs)
                assert rows[sid].cost_nanousd == sum(r.cost_nanousd for r in rs)
                assert rows[sid].first_seen == min(r.created_at for r in rs)
                assert rows[sid].last_seen == max(r.created_at for r in rs)


def test_a_retried_record_is_rolled_up_once(db_url: str) -> None:
    records = _records(40)
    with ledger(db_url) as engine:
        write(engine, records[:30])
        # The writer sees ids it already wrote (an ambiguous commit retried) plus new ones.
        write(engine, records[20:], batch_size=50)
        with engine.connect() as conn:
            dims = ("day", "model", "provider", "batch_id")
            assert _table(conn, usage_daily_model, dims) == _expected(records, dims)


def test_requests_rejected_before_any_attempt_stay_out_of_the_rollups(db_url: str) -> None:
    """On both write paths (SQLite: rows through Python; PostgreSQL: set-based SQL)."""
    served = record(1, T0, "a/x", provider="p1", status="success", prompt_tokens=5, completion_tokens=3,
                    cost_nanousd=80, session_id="s1")
    failed = record(2, T0, "a/x", provider="p1", status="error", session_id="s1")  # an attempt was made
    rejected = record(3, T0, "ghost/unknown", status="error", http_status=404, session_id="s1")
    with ledger(db_url) as engine:
        write(engine, [served, failed, rejected])
        with engine.connect() as conn:
            assert len(conn.execute(select(schema.generations.c.id)).all()) == 3  # all kept in the ledger
            models = {(row.model, row.requests, row.errors) for row in conn.execute(select(usage_daily_model))}
            hours = {row.model for row in conn.execute(select(usage_hourly))}
            session = conn.execute(select(usage_sessions)).one()
    assert models == {("a/x", 1, 1)}
    assert hours == {"a/x"}
    assert (session.requests, session.errors) == (1, 1)
