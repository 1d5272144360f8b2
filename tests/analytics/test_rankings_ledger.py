"""Every dimension x period x range from gateway traffic, against sums over the records."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import date, datetime, timedelta

import pytest

from tollway.analytics.attribution import DIMENSIONS, Attribution
from tollway.analytics.rankings import RankingQuery, choose_cube, rankings
from tollway.catalog.index import build_catalog
from tollway.ledger.keys import create_key
from tollway.ledger.records import GenerationRecord

from .helpers import MINIMAX, OPUS, db_url, ledger, record, settings_for, write

__all__ = ["db_url"]

START = datetime(2026, 1, 26)  # a Monday; traffic runs ~7 weeks, across a month boundary
COUNTRY = {"US": "US", "CN": "CN", "BR": "BR"}
MODELS = [OPUS["id"], MINIMAX["id"], "moonshotai/kimi-k2.5-0127", "mistralai/mistral-large", "someone/odd"]


def _key_of(r: GenerationRecord, by: str, keys: dict[str, str]) -> str:
    origin = {OPUS["id"]: "US", MINIMAX["id"]: "CN", MODELS[2]: "CN", MODELS[3]: "FR", MODELS[4]: "UNKNOWN"}
    return {
        "model": r.model, "author": r.model.split("/")[0], "origin": origin[r.model],
        "weights": {OPUS["id"]: "closed", MINIMAX["id"]: "open"}.get(r.model, "unknown"),
        "provider": r.provider or "(none)",
        "provider-country": {"anthropic": "US", "minimax": "SG"}.get(r.provider or "", "UNKNOWN"),
        "app": r.app or "(none)", "key": r.key_id or "(none)",
        "user-country": keys.get(r.key_id or "", "UNKNOWN"),
    }[by]


def _floor(d: date, period: str, start: date | None) -> date:
    if period == "week":
        return d - timedelta(days=d.weekday())
    if period == "month":
        return d.replace(day=1)
    if period == "total":
        return start or date.min
    return d


@pytest.fixture
def traffic(db_url: str):  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    with ledger(db_url) as engine:
        with engine.begin() as conn:
            keys = {create_key(conn, name=f"k{i}", country=c)[0].id: c for i, c in enumerate(["US", "CN", "BR"] * 2)}
        key_ids = [*keys, None]
        records = [record(i, START + timedelta(minutes=rng.randint(0, 49 * 24 * 60)), rng.choice(MODELS),
                          provider=rng.choice(["anthropic", "minimax", "other", None]),
                          app=rng.choice(["https://a.example", "https://b.example", None]),
                          key_id=rng.choice(key_ids), prompt_tokens=rng.randint(0, 90_000),
                          completion_tokens=rng.randint(0, 3_000), cost_nanousd=rng.randint(0, 10**7))
                   for i in range(700)]
        write(engine, records, batch_size=53)
        yield engine, build_catalog(settings_for(db_url)), records, keys


@pytest.mark.parametrize("period", ["day", "week", "month", "total"])
@pytest.mark.parametrize("span", [(None, None), (date(2026, 2, 2), date(2026, 2, 22)),
                                  (date(2026, 2, 1), date(2026, 2, 28)), (date(2026, 1, 29), date(2026, 2, 11))])
def test_every_dimension_matches_the_records(traffic, period, span) -> None:  # type: ignore[no-untyped-def]
    engine, catalog, records, keys = traffic
    start, end = span
    selected = [r for r in records if (start is None or r.created_at.date() >= start)
                and (end is None or r.created_at.date() <= end)]
    with engine.connect() as conn:
        attribution = Attribution.load(conn, catalog, with_keys=True)
        for by in DIMENSIONS:
            query = RankingQuery(by=by, period=period, start=start, end=end)
            doc = rankings(conn, query, attribution)
            expected: dict[tuple[date, str], int] = defaultdict(int)
            cost: dict[tuple[date, str], int] = defaultdict(int)
            for r in selected:
                k = (_floor(r.created_at.date(), period, start if period == "total" else None), _key_of(r, by, keys))
                expected[k] += r.prompt_tokens + r.completion_tokens
                cost[k] += r.cost_nanousd
            got = {(date.fromisoformat(row["period_start"]), row["key"]): row for row in doc["rows"]}
            if period == "total" and start is None:
                first = min(r.created_at.date() for r in selected)
                expected = defaultdict(int, {(first, k): v for (_, k), v in expected.items()})
                cost = defaultdict(int, {(first, k): v for (_, k), v in cost.items()})
            assert {k: v["total_tokens"] for k, v in got.items()} == dict(expected), (by, choose_cube(query))
            assert {k: v["cost_nanousd"] for k, v in got.items()} == dict(cost)
            for (p, _), row in got.items():
                in_period = sorted((v for (q, _), v in expected.items() if q == p), reverse=True)
                assert row["rank"] == in_period.index(row["total_tokens"]) + 1 or \
                    in_period.count(row["total_tokens"]) > 1


def test_cube_choice_follows_the_range() -> None:
    weekly = choose_cube(RankingQuery(by="origin", period="week", start=date(2026, 2, 9), end=date(2026, 2, 22)))
    assert weekly.grain == "week"
    partial = choose_cube(RankingQuery(by="origin", period="week", start=date(2026, 2, 10)))
    assert partial.grain == "day"
    assert choose_cube(RankingQuery(by="model", period="month", end=date(2026, 2, 28))).grain == "month"
    assert choose_cube(RankingQuery(by="user-country", period="week")).table.name == "usage_daily_key"
    assert choose_cube(RankingQuery(by="model", app="x")).grain == "hour"


def test_user_share_by_country(traffic) -> None:  # type: ignore[no-untyped-def]
    engine, catalog, records, keys = traffic
    with engine.connect() as conn:
        doc = rankings(conn, RankingQuery(by="user-country", period="total"),
                       Attribution.load(conn, catalog, with_keys=True))
    users: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r.key_id:
            users[keys[r.key_id]].add(r.key_id)
    got = {row["key"]: row for row in doc["rows"]}
    for country, ids in users.items():
        assert got[country]["users"] == len(ids)
        assert got[country]["user_share"] == len(ids) / len(keys)
    assert doc["periods"][0]["users"] == len(keys)
