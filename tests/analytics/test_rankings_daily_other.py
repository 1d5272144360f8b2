"""rankings-daily: each period's top 50 models and an ``other`` row with exactly the rest."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from tollway.analytics.datasets import TOP_MODELS, RankingsParams, rankings_daily
from tollway.analytics.query import Viewer

from .helpers import db_url, ledger, record, write

__all__ = ["db_url"]


def test_top_models_and_the_rest_per_day(db_url: str) -> None:
    rng = random.Random(7)
    start = datetime(2026, 2, 9)
    records = [record(i, start + timedelta(minutes=rng.randint(0, 3 * 1440 - 1)), f"m/{rng.randint(0, 69)}",
                      prompt_tokens=rng.randint(1, 5000), completion_tokens=rng.randint(0, 500))
               for i in range(1500)]
    expected: dict[str, dict[str, int]] = {}
    for r in records:
        per_day = expected.setdefault(r.created_at.date().isoformat(), {})
        per_day[r.model] = per_day.get(r.model, 0) + r.prompt_tokens + r.completion_tokens
    params = RankingsParams(start=date(2026, 2, 9), end=date(2026, 2, 11), period="day", context_bucket=None,
                            category=None, now=datetime(2026, 2, 12))
    with ledger(db_url) as engine:
        write(engine, records, batch_size=250)
        with engine.connect() as conn:
            rows = rankings_daily(conn, params, Viewer(None, True))["data"]
    assert [r["date"] for r in rows] == sorted(r["date"] for r in rows)
    for day, totals in expected.items():
        assert len(totals) > TOP_MODELS
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
        got = [(r["model_permaslug"], int(r["total_tokens"])) for r in rows if r["date"] == day]
        assert got == [*ranked[:TOP_MODELS], ("other", sum(t for _, t in ranked[TOP_MODELS:]))]
