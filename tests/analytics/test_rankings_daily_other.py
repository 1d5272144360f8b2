"""rankings-daily: each period's top 50 models and an ``other`` row with exactly the rest."""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, timedelta
from pathlib import Path

from tollway.analytics.datasets import TOP_MODELS, RankingsParams, rankings_daily
from tollway.analytics.importer import import_usage
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


def test_imports_and_providers_are_summed_per_model_and_ties_go_by_model_id(db_url: str, tmp_path: Path) -> None:
    """A model's tokens from several providers and from imported days (their own batches) are
    one sum; equal sums rank by model id.  (SQLite reads the day x model cube's rows without
    GROUP BY and sums the import batches in Python: this is that case.)"""
    rng = random.Random(9)
    start = datetime(2026, 2, 9)
    records = [record(i, start + timedelta(minutes=rng.randint(0, 2 * 1440 - 1)), f"m/{rng.randint(0, 59)}",
                      provider=rng.choice(["p1", "p2", "p3"]), prompt_tokens=rng.randint(1, 5000),
                      completion_tokens=rng.randint(0, 500))
               for i in range(1200)]
    # Ties: two models with exactly the same large sum on the first day, gateway traffic only.
    records += [record(5000 + i, start + timedelta(hours=1), model, prompt_tokens=400_000, completion_tokens=0)
                for i, model in enumerate(("tie/b", "tie/a"))]
    imported: list[tuple[str, str, str, int, int]] = [
        (day, f"m/{rng.randint(0, 89)}", rng.choice(["p1", ""]), rng.randint(1, 90_000), rng.randint(0, 9_000))
        for day in ("2026-02-09", "2026-02-10") for _ in range(120)]
    expected: dict[str, dict[str, int]] = {}
    for r in records:
        per_day = expected.setdefault(r.created_at.date().isoformat(), {})
        per_day[r.model] = per_day.get(r.model, 0) + r.prompt_tokens + r.completion_tokens
    files = []
    for n, half in enumerate((imported[::2], imported[1::2])):  # two files: two import batches
        path = tmp_path / f"days{n}.csv"
        with path.open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(["period_start", "model", "provider", "prompt_tokens", "completion_tokens", "requests"])
            for day, model, provider, prompt, completion in half:
                out.writerow([day, model, provider, prompt, completion, 1])
                expected[day][model] = expected[day].get(model, 0) + prompt + completion
        files.append(path)
    params = RankingsParams(start=date(2026, 2, 9), end=date(2026, 2, 10), period="day", context_bucket=None,
                            category=None, now=datetime(2026, 2, 12))
    with ledger(db_url) as engine:
        write(engine, records, batch_size=250)
        for path in files:
            assert import_usage(engine, path, period="day").batch_id is not None
        with engine.connect() as conn:
            rows = rankings_daily(conn, params, Viewer(None, True))["data"]
    for day, totals in expected.items():
        ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
        got = [(r["model_permaslug"], int(r["total_tokens"])) for r in rows if r["date"] == day]
        assert got == [*ranked[:TOP_MODELS], ("other", sum(t for _, t in ranked[TOP_MODELS:]))]
    first = [r["model_permaslug"] for r in rows if r["date"] == "2026-02-09"]
    assert first.index("tie/a") + 1 == first.index("tie/b")
