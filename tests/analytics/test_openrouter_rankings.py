"""Rankings over the real weekly OpenRouter top-model data, checked against sums made here.

The data (shared/data/openrouter_rankings) is converted to tollway's aggregate import format,
imported, and every figure the report gives is recomputed independently from the raw JSON.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

from tollway.analytics.attribution import Attribution
from tollway.analytics.importer import import_usage
from tollway.analytics.rankings import RankingQuery, rankings
from tollway.catalog.index import build_catalog

from .helpers import REPO_ROOT, db_url, ledger, openrouter_weeks, settings_for, write_import_csv

__all__ = ["db_url"]  # the fixture, imported so that it is found

FEB_9 = date(2026, 2, 9)
FEB_16 = date(2026, 2, 16)
FLAT_CSV = REPO_ROOT.parent / "shared" / "data" / "openrouter_rankings" / \
    "openrouter_top_models_weekly_2025-11_to_2026-05.csv"


def _country_by_slug() -> dict[str, str]:
    """Author country per slug from the flattened CSV (joined there from the metadata table)."""
    with FLAT_CSV.open() as fh:
        return {r["slug"]: r["author_country_iso2"] for r in csv.DictReader(fh)}


@pytest.fixture
def imported(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    rows = openrouter_weeks()
    path = write_import_csv(rows, tmp_path / "openrouter_weekly.csv")
    settings = settings_for(db_url)
    with ledger(db_url) as engine:
        result = import_usage(engine, path, period="week", catalog=build_catalog(settings))
        assert result.rows == len(rows)
        yield engine, build_catalog(settings), rows, path


def _report(engine, catalog, **kw):  # type: ignore[no-untyped-def]
    query = RankingQuery(**kw)
    with engine.connect() as conn:
        return rankings(conn, query, Attribution.load(conn, catalog, with_keys=False))


def test_origin_weeks_of_the_february_2026_reports(imported) -> None:  # type: ignore[no-untyped-def]
    engine, catalog, rows, _ = imported
    country = _country_by_slug()
    expected: dict[tuple[date, str], int] = defaultdict(int)
    for r in rows:
        expected[(r["week"], country[r["slug"]])] += r["prompt_tokens"] + r["completion_tokens"]

    doc = _report(engine, catalog, by="origin", period="week", start=FEB_9, end=date(2026, 2, 22))
    got = {(date.fromisoformat(r["period_start"]), r["key"]): r for r in doc["rows"]}
    assert set(got) == {(FEB_9, "CN"), (FEB_9, "US"), (FEB_16, "CN"), (FEB_16, "US")}
    for key, row in got.items():
        assert row["total_tokens"] == expected[key]
        assert row["prompt_tokens"] + row["completion_tokens"] == row["total_tokens"]
    # The headline figures: Chinese models 4.12T in 9-15 Feb and 5.16T in 16-22 Feb, ahead of US models.
    assert round(got[(FEB_9, "CN")]["total_tokens"] / 1e12, 2) == 4.12
    assert round(got[(FEB_16, "CN")]["total_tokens"] / 1e12, 2) == 5.16
    assert got[(FEB_9, "CN")]["rank"] == got[(FEB_16, "CN")]["rank"] == 1
    week_total = expected[(FEB_16, "CN")] + expected[(FEB_16, "US")]
    assert got[(FEB_16, "CN")]["share"] == pytest.approx(expected[(FEB_16, "CN")] / week_total, rel=1e-12)
    # Rank change against 2-8 Feb (read although outside the range), and growth week on week.
    feb_2 = date(2026, 2, 2)
    prior = {c: expected[(feb_2, c)] for c in ("CN", "US")}
    prior_rank_cn = 1 if prior["CN"] > prior["US"] else 2
    assert got[(FEB_9, "CN")]["prev_rank"] == prior_rank_cn
    assert got[(FEB_9, "CN")]["rank_change"] == prior_rank_cn - 1
    assert got[(FEB_16, "US")]["change"] == pytest.approx(
        (expected[(FEB_16, "US")] - expected[(FEB_9, "US")]) / expected[(FEB_9, "US")], rel=1e-12)
    # Exact integers in the totals too.
    assert doc["periods"][1]["total_tokens"] == week_total


def test_top_five_concentration_16_to_22_february(imported) -> None:  # type: ignore[no-untyped-def]
    engine, catalog, rows, _ = imported
    country = _country_by_slug()
    week = sorted((r for r in rows if r["week"] == FEB_16),
                  key=lambda r: -(r["prompt_tokens"] + r["completion_tokens"]))
    top5 = week[:5]
    top5_tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in top5)
    week_tokens = sum(r["prompt_tokens"] + r["completion_tokens"] for r in week)

    doc = _report(engine, catalog, by="model", period="week", start=FEB_16, end=date(2026, 2, 22), top=5)
    assert [r["key"] for r in doc["rows"]] == [r["slug"] for r in top5]
    assert [r["rank"] for r in doc["rows"]] == [1, 2, 3, 4, 5]
    (summary,) = doc["periods"]
    assert summary["top_n"] == 5
    assert summary["top_n_share"] == pytest.approx(top5_tokens / week_tokens, rel=1e-12)
    assert summary["keys"] == len(week)  # --top limits rows, not the ranking
    # Four of the top five are Chinese, with 85.7% of the top five's tokens.
    cn = [r for r in doc["rows"] if country[r["key"]] == "CN"]
    assert len(cn) == 4
    assert round(sum(r["total_tokens"] for r in cn) / top5_tokens * 100, 1) == 85.7
    # The same through the report's own attribution: by author, CN authors hold the same tokens.
    by_origin = _report(engine, catalog, by="origin", period="week", start=FEB_16, end=date(2026, 2, 22))
    cn_row = next(r for r in by_origin["rows"] if r["key"] == "CN")
    assert cn_row["total_tokens"] == sum(r["prompt_tokens"] + r["completion_tokens"]
                                         for r in week if country[r["slug"]] == "CN")


def test_author_rankings_and_growth_over_all_weeks(imported) -> None:  # type: ignore[no-untyped-def]
    engine, catalog, rows, _ = imported
    expected: dict[tuple[date, str], int] = defaultdict(int)
    for r in rows:
        expected[(r["week"], r["slug"].split("/")[0])] += r["prompt_tokens"] + r["completion_tokens"]
    doc = _report(engine, catalog, by="author", period="week")
    got = {(date.fromisoformat(r["period_start"]), r["key"]): r["total_tokens"] for r in doc["rows"]}
    assert got == dict(expected)
    weeks = sorted({w for w, _ in expected})
    assert [p["period_start"] for p in doc["periods"]] == [w.isoformat() for w in weeks]
    minimax = next(g for g in doc["growth"] if g["key"] == "minimax")
    first = min(w for w, a in expected if a == "minimax")
    last = max(w for w, a in expected if a == "minimax")
    steps = (last - first).days // 7
    ratio = expected[(last, "minimax")] / expected[(first, "minimax")]
    assert minimax["first_period"] == first.isoformat()
    assert minimax["growth"] == pytest.approx(ratio - 1)
    assert minimax["compound_growth_per_period"] == pytest.approx(ratio ** (1 / steps) - 1)


def test_month_and_total_periods_sum_the_weeks(imported) -> None:  # type: ignore[no-untyped-def]
    engine, catalog, rows, _ = imported
    # Aggregate weekly rows land on their Monday, so a month holds the weeks that start in it.
    expected: dict[date, int] = defaultdict(int)
    for r in rows:
        expected[r["week"].replace(day=1)] += r["prompt_tokens"] + r["completion_tokens"]
    doc = _report(engine, catalog, by="weights", period="month")
    assert {date.fromisoformat(p["period_start"]): p["total_tokens"] for p in doc["periods"]} == dict(expected)
    total = _report(engine, catalog, by="model", period="total")
    assert total["periods"][0]["total_tokens"] == sum(expected.values())
    assert sum(r["requests"] for r in total["rows"]) == sum(r["request_count"] for r in rows)


def test_reimport_is_a_noop(imported) -> None:  # type: ignore[no-untyped-def]
    engine, catalog, rows, path = imported
    before = _report(engine, catalog, by="model", period="total")
    again = import_usage(engine, path, period="week", catalog=catalog)
    assert again.skipped and again.rows == 0
    after = _report(engine, catalog, by="model", period="total")
    assert after == before
    assert after["periods"][0]["total_tokens"] == sum(r["prompt_tokens"] + r["completion_tokens"] for r in rows)
