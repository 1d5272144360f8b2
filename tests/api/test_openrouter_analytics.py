"""OpenRouter's analytics and datasets APIs through the official ``openrouter`` SDK (sync and
async), responses validated against OpenRouter's spec, numbers checked against SQL on the ledger."""

from __future__ import annotations

import asyncio
import csv
import functools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator
from openrouter import OpenRouter, errors
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import text

from tests.analytics.helpers import ledger, openrouter_weeks, record, write, write_import_csv
from tests.analytics.test_openrouter_rankings import FLAT_CSV
from tests.conftest import SHARED
from tests.limits.support import MODEL, MeteredStub, gateway, raw_config
from tests.support.servers import aiohttp_server, new_key
from tollway.analytics.importer import import_usage
from tollway.ledger.rollups import bucket_bounds, token_bucket

ADMIN = "sk-admin-analytics-secret"
SPEC = SHARED / "reference" / "specs" / "openrouter-openapi.yaml"
DAY0 = datetime(2026, 2, 9)  # a Monday
CHINA, US = "minimax/minimax-m2.5", "anthropic/claude-opus-4.6"


@functools.cache
def _spec() -> tuple[str, Registry]:
    doc = yaml.safe_load(Path(SPEC).read_text())
    return "urn:or", Registry().with_resource("urn:or", Resource.from_contents(doc, default_specification=DRAFT202012))


def spec_errors(pointer: str, instance: Any) -> list[str]:
    """Validation errors of ``instance`` against the schema at ``pointer`` in OpenRouter's spec."""
    uri, registry = _spec()
    validator = Draft202012Validator({"$ref": f"{uri}#{pointer}"}, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def response_schema(path: str, method: str = "get") -> str:
    escaped = path.replace("/", "~1")
    return f"/paths/{escaped}/{method}/responses/200/content/application~1json/schema"


@dataclass
class Env:
    url: str
    database: str
    alice: str
    alice_id: str
    bob: str
    bob_id: str
    gw: Any

    def client(self, key: str) -> OpenRouter:
        return OpenRouter(api_key=key, server_url=self.url + "/api/v1")

    def get(self, path: str, key: str = ADMIN, **params: Any) -> httpx.Response:
        return httpx.get(self.url + path, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30)

    def flush(self) -> None:
        assert self.gw.writer.flush(10), "ledger writer did not drain"

    def sql(self, query: str, **params: Any) -> list[Any]:
        with ledger(self.database) as engine, engine.connect() as conn:
            return list(conn.execute(text(query), params))


def _traffic(alice_id: str, bob_id: str) -> list[Any]:
    """Two weeks of generations over two keys, two apps, two models, errors, fallbacks and timings."""
    out = []
    n = 0
    for day in range(14):
        for i in range(6 + day % 3):
            n += 1
            at = DAY0 + timedelta(days=day, hours=(2 * i) % 24, minutes=i)
            alice = i % 3 != 2
            error = i == 5
            out.append(record(
                n, at, CHINA if i % 2 else US, key_id=alice_id if alice else bob_id,
                provider="minimax" if i % 2 else "anthropic", app="https://cline.bot" if alice else None,
                app_title="Cline" if alice else "Script", session_id=f"s-{day}-{i % 2}",
                prompt_tokens=0 if error else 500 * (i + 1) + day * 3000,
                completion_tokens=0 if error else 40 * (i + 1),
                cached_tokens=100 if i % 4 == 0 else 0, cost_nanousd=0 if error else 1_000_000 * (i + 1),
                status="error" if error else "success",
                finish_reason=None if error else ("stop" if i % 2 else "length"),
                latency_ms=200 + 97 * i + day, ttft_ms=None if error else 50 + 11 * i,
                attempts=[{"provider": "x"}, {"provider": "y"}] if i == 3 else None,
                extra={"user": f"user-{i % 2}"}))
    return out


@pytest.fixture
def env(database: str) -> Iterator[Env]:
    alice_id, alice = new_key(database, "alice", country="de")
    bob_id, bob = new_key(database, "bob", country="us")
    with ledger(database) as engine:
        write(engine, _traffic(alice_id, bob_id))
    with aiohttp_server(MeteredStub().app()) as upstream, gateway(raw_config(database, upstream, admin_key=ADMIN)) \
            as (url, gw):
        yield Env(url, database, alice, alice_id, bob, bob_id, gw)
        assert gw.writer.flush(10)


def query(env: Env, key: str = ADMIN, **body: Any) -> dict[str, Any]:
    """The query through the SDK and over plain HTTP: the SDK's row model keeps no fields (its
    schema declares none), so rows are read from the raw response, validated against the spec."""
    sdk = env.client(key).analytics.query_analytics(**body)
    resp = httpx.post(env.url + "/api/v1/analytics/query", json=body, headers={"Authorization": f"Bearer {key}"},
                      timeout=30)
    doc = resp.json()
    assert spec_errors(response_schema("/analytics/query", "post"), doc) == []
    assert sdk.data.metadata.row_count == doc["data"]["metadata"]["row_count"] == len(doc["data"]["data"])
    assert sdk.data.metadata.truncated == doc["data"]["metadata"]["truncated"]
    return dict(doc["data"])


RANGE = {"start": "2026-02-09T00:00:00Z", "end": "2026-02-23T00:00:00Z"}


def test_meta_lists_every_metric_and_dimension(env: Env) -> None:
    doc = env.get("/api/v1/analytics/meta").json()
    assert spec_errors(response_schema("/analytics/meta"), doc) == []
    meta = env.client(ADMIN).analytics.get_analytics_meta()
    metrics = {m.name: m for m in meta.data.metrics}
    assert {"request_count", "p99_latency", "error_rate", "ttft_p90", "usage_cache"} <= set(metrics)
    assert metrics["error_rate"].is_rate and not metrics["tokens_total"].is_rate
    assert {d.name for d in meta.data.dimensions} >= {"model", "api_key_id", "category", "context_length_bucket"}
    assert {o.name for o in meta.data.operators} == {"eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte"}


def test_query_by_model_and_day_matches_the_ledger(env: Env) -> None:
    resp = query(env, metrics=["request_count", "tokens_total", "total_usage", "error_rate", "fallback_rate",
                               "avg_latency"], dimensions=["model"], granularity="day", time_range=RANGE, limit=10_000)
    rows = resp["data"]
    assert len(rows) == 28 and not resp["metadata"]["truncated"]
    got = {(r["date__day"][:10], r["model"]): r for r in rows}
    expected = env.sql(
        "SELECT substr(CAST(created_at AS TEXT), 1, 10) AS d, model, count(*) AS n, "
        "sum(prompt_tokens + completion_tokens) AS tok, sum(cost_nanousd) AS cost, "
        "sum(CASE WHEN status = 'error' THEN 1 ELSE 0 END) AS errs, "
        "sum(CASE WHEN attempts IS NOT NULL THEN 1 ELSE 0 END) AS fb, "
        "sum(CASE WHEN status <> 'error' THEN latency_ms ELSE 0 END) AS lat, "
        "sum(CASE WHEN status <> 'error' THEN 1 ELSE 0 END) AS ok FROM generations GROUP BY 1, 2")
    assert len(expected) == 28
    for d, model, *sums in expected:
        n, tok, cost, errs, fb, lat, ok = map(int, sums)  # PostgreSQL's sums are Decimals
        row = got[(d, model)]
        assert row["request_count"] == n
        assert row["tokens_total"] == tok
        assert row["total_usage"] == pytest.approx(cost / 1e9)
        assert row["error_rate"] == pytest.approx(errs / n)
        assert row["fallback_rate"] == pytest.approx(fb / n)
        assert row["avg_latency"] == pytest.approx(lat / ok)


def test_partial_days_come_from_the_hourly_cube(env: Env) -> None:
    """A range that starts and ends mid-day is exact to the hour."""
    window = {"start": "2026-02-10T06:00:00Z", "end": "2026-02-12T15:00:00Z"}
    [row] = query(env, metrics=["request_count", "tokens_prompt"], time_range=window)["data"]
    [(n, prompt)] = env.sql("SELECT count(*), sum(prompt_tokens) FROM generations WHERE created_at >= :a AND "
                            "created_at < :b", a=datetime(2026, 2, 10, 6), b=datetime(2026, 2, 12, 15))
    assert (row["request_count"], row["tokens_prompt"]) == (n, prompt)


def test_percentiles_come_from_histograms_within_a_bucket(env: Env) -> None:
    [row] = query(env, metrics=["p50_latency", "p90_latency", "ttft_p50", "p50_throughput"], dimensions=["model"],
                  filters=[{"field": "model", "operator": "eq", "value": US}], time_range=RANGE)["data"]
    lat = sorted(r[0] for r in env.sql("SELECT latency_ms FROM generations WHERE status <> 'error' "
                                       "AND model = :m", m=US))
    for name, q in (("p50_latency", 0.5), ("p90_latency", 0.9)):
        true = lat[max(0, int(q * len(lat) + 0.999999) - 1)]
        lo, hi = bucket_bounds(token_bucket(true))
        assert lo <= row[name] <= hi, (name, true, row[name])
    assert row["ttft_p50"] is not None and row["p50_throughput"] is not None


def test_keys_resolve_to_names_and_others_see_only_their_own(env: Env) -> None:
    admin = query(env, metrics=["request_count"], dimensions=["api_key_id"], time_range=RANGE)
    by_key = {r["api_key_id"]: r for r in admin["data"]}
    counts = dict(env.sql("SELECT key_id, count(*) FROM generations GROUP BY key_id"))
    assert {k: r["request_count"] for k, r in by_key.items()} == counts
    assert by_key[env.alice_id]["api_key_name"] == "alice"
    own = query(env, env.alice, metrics=["request_count"], dimensions=["api_key_id"], time_range=RANGE)
    assert [(r["api_key_id"], r["request_count"]) for r in own["data"]] == [(env.alice_id, counts[env.alice_id])]
    # Naming another key's traffic does not widen the view.
    other = query(env, env.alice, metrics=["request_count"], time_range=RANGE,
                  filters=[{"field": "api_key_id", "operator": "eq", "value": env.bob_id}])
    assert other["data"] == []


def test_filters_and_derived_dimensions(env: Env) -> None:
    doc = query(env, metrics=["tokens_completion"], dimensions=["app", "country"], time_range=RANGE,
                filters=[{"field": "finish_reason", "operator": "in", "value": ["stop", "length"]},
                         {"field": "context_length_bucket", "operator": "neq", "value": "100K"}])
    got = {(r["app"], r["country"]): r["tokens_completion"] for r in doc["data"]}
    rows = env.sql("SELECT coalesce(g.app, g.app_title), k.country, sum(completion_tokens) FROM generations g "
                   "JOIN keys k ON k.id = g.key_id WHERE finish_reason IN ('stop', 'length') "
                   "AND prompt_tokens <= 10000 GROUP BY 1, 2")
    titles = {"https://cline.bot": "https://cline.bot", "Script": "Script"}  # the titles table knows no app yet
    assert got == {(titles[a], c.upper()): int(s) for a, c, s in rows}


def test_per_request_dimensions_read_a_bounded_window(env: Env) -> None:
    window = {"start": "2026-02-09T00:00:00Z", "end": "2026-02-09T03:00:00Z"}
    doc = query(env, metrics=["tokens_prompt"], dimensions=["generation_id", "external_user"],
                granularity="minute", time_range=window)
    expected = env.sql("SELECT id, prompt_tokens FROM generations WHERE created_at < :b", b=datetime(2026, 2, 9, 3))
    assert sorted((r["generation_id"], r["tokens_prompt"]) for r in doc["data"]) == sorted(expected)
    assert {r["external_user"] for r in doc["data"]} == {"user-0", "user-1"}


@pytest.mark.parametrize(("body", "field"), [
    ({"metrics": ["request_count"], "dimensions": ["model", "app", "provider"]}, "dimensions"),
    ({"metrics": ["bogus"]}, "metrics"),
    ({"metrics": ["request_count"], "limit": 10_001}, "limit"),
    ({"metrics": ["request_count"], "granularity": "minute", "time_range": RANGE}, "time_range"),
    ({"metrics": ["request_count"], "filters": [{"field": "model", "operator": "like", "value": "x"}]},
     "filters[0].operator"),
    ({"metrics": ["p50_latency"], "dimensions": ["finish_reason"]}, "finish_reason"),
])
def test_invalid_queries_are_400s_naming_the_field(env: Env, body: dict[str, Any], field: str) -> None:
    resp = httpx.post(env.url + "/api/v1/analytics/query", json=body, headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 400
    assert spec_errors("/components/schemas/BadRequestResponse", resp.json()) == []
    assert field in resp.json()["error"]["message"]


def test_sdk_raises_on_a_bad_query(env: Env) -> None:
    with pytest.raises(errors.BadRequestResponseError) as info:
        env.client(ADMIN).analytics.query_analytics(metrics=["request_count"], dimensions=["nope"])
    assert "dimensions" in str(info.value.data.error.message)


def test_async_sdk_queries(env: Env) -> None:
    async def go() -> Any:
        async with env.client(env.bob) as client:
            return await client.analytics.query_analytics_async(metrics=["request_count"], time_range=RANGE)

    doc = asyncio.run(go())
    [(n,)] = env.sql("SELECT count(*) FROM generations WHERE key_id = :k", k=env.bob_id)
    assert doc.data.metadata.row_count == 1
    assert query(env, env.bob, metrics=["request_count"], time_range=RANGE)["data"] == [{"request_count": n}]


def test_rankings_daily_top_models_and_other(env: Env) -> None:
    params = {"start_date": "2026-02-09", "end_date": "2026-02-15"}
    raw = env.get("/api/v1/datasets/rankings-daily", **params).json()
    assert spec_errors("/components/schemas/RankingsDailyResponse", raw) == []
    doc = env.client(ADMIN).datasets.get_rankings_daily(start_date="2026-02-09", end_date="2026-02-15")
    expected = env.sql("SELECT substr(CAST(created_at AS TEXT), 1, 10), model, sum(prompt_tokens + completion_tokens) "
                       "FROM generations WHERE created_at < :b GROUP BY 1, 2", b=datetime(2026, 2, 16))
    got = {(r.date_, r.model_permaslug): int(r.total_tokens) for r in doc.data}
    assert {k: v for k, v in got.items() if k[1] != "other"} == {(d, m): int(t) for d, m, t in expected}
    assert all(v == 0 for k, v in got.items() if k[1] == "other")
    assert [r.model_permaslug for r in doc.data][-1] == "other"
    assert doc.meta.start_date == "2026-02-09"
    # Another key sees its own traffic only.
    own = env.client(env.alice).datasets.get_rankings_daily(start_date="2026-02-09", end_date="2026-02-15")
    mine = env.sql("SELECT substr(CAST(created_at AS TEXT), 1, 10), model, sum(prompt_tokens + completion_tokens) "
                   "FROM generations WHERE created_at < :b AND key_id = :k GROUP BY 1, 2", b=datetime(2026, 2, 16),
                   k=env.alice_id)
    assert {(r.date_, r.model_permaslug): int(r.total_tokens) for r in own.data if r.model_permaslug != "other"} \
        == {(d, m): int(t) for d, m, t in mine}


def test_activity_is_per_day_and_endpoint_for_the_caller(env: Env) -> None:
    yesterday = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), datetime.min.time())
    with ledger(env.database) as engine:
        write(engine, [record(900_001, yesterday + timedelta(hours=1), US, key_id=env.alice_id, provider="anthropic",
                              prompt_tokens=11, completion_tokens=7, reasoning_tokens=3, cost_nanousd=2_500_000),
                       record(900_002, yesterday + timedelta(hours=2), US, key_id=env.bob_id, provider="anthropic",
                              prompt_tokens=5, completion_tokens=5, cost_nanousd=1_000_000)])
    raw = env.get("/api/v1/activity", key=env.alice).json()
    assert spec_errors("/components/schemas/ActivityResponse", raw) == []
    assert env.get("/api/v1/activity", key=env.alice, date="2020-01-01").status_code == 400
    doc = env.client(env.alice).analytics.get_user_activity(request={"date_": yesterday.date().isoformat()})
    [item] = doc.data
    assert (item.model, item.provider_name, item.requests, item.prompt_tokens, item.completion_tokens,
            item.reasoning_tokens, item.usage) == (US, "anthropic", 1, 11, 7, 3, 0.0025)
    everyone = env.client(ADMIN).analytics.get_user_activity()
    assert sum(i.requests for i in everyone.data) == 2


def test_app_rankings_and_session_cost_validate(env: Env) -> None:
    raw = env.get("/api/v1/datasets/app-rankings", start_date="2026-02-09", end_date="2026-02-22").json()
    assert spec_errors("/components/schemas/AppRankingsResponse", raw) == []
    tokens = dict(env.sql("SELECT coalesce(app, app_title), sum(prompt_tokens + completion_tokens) "
                          "FROM generations GROUP BY 1"))
    assert [(r["app_name"], int(r["total_tokens"])) for r in raw["data"]] == \
        sorted(((a, int(t)) for a, t in tokens.items()), key=lambda x: -x[1])
    assert [r["rank"] for r in raw["data"]] == [1, 2]
    paged = env.client(ADMIN).datasets.get_app_rankings(start_date="2026-02-09", end_date="2026-02-22", offset=1)
    assert [r.rank for r in paged.result.data] == [2]
    assert paged.result.data[0].app_name == raw["data"][1]["app_name"]


def test_session_cost_medians_by_harness_model_and_turns(env: Env) -> None:
    yesterday = datetime.combine(datetime.now(UTC).date() - timedelta(days=1), datetime.min.time())
    costs = {"a": [1_000_000, 2_000_000], "b": [7_000_000], "c": [4_000_000, 4_000_000, 1_000_000]}
    recs, n = [], 800_000
    for session, parts in costs.items():
        for cost in parts:
            n += 1
            recs.append(record(n, yesterday + timedelta(minutes=n % 600), US, key_id=env.alice_id,
                               app_title="Hermes Agent", session_id=session, cost_nanousd=cost))
    with ledger(env.database) as engine:
        write(engine, recs)
    raw = env.get("/api/v1/datasets/session-cost", key=env.alice).json()
    assert spec_errors("/components/schemas/SessionCostResponse", raw) == []
    got = {(r["app_slug"], r["turn_range"], r["model_permaslug"]): r["median_session_cost_usd"] for r in raw["data"]}
    # Sessions a (2 turns, $0.003) and c (3 turns, $0.009): median $0.006; b (1 turn): $0.007.
    assert got == {("hermes-agent", "2-9-turns", US): pytest.approx(0.006), ("hermes-agent", "1-turn", US): 0.007}
    doc = env.client(env.bob).datasets.get_session_cost(app_slug="hermes-agent")
    assert doc.result.data == [] and doc.result.meta.window_days == 30



def test_categories_from_the_header_and_the_cli(env: Env, tmp_path: Path) -> None:
    """Apps declare categories with X-OpenRouter-Categories; ``tollway apps set-category`` overrides."""
    body = {"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}], "user": "u-42"}
    for referer, title, categories in (("https://cline.bot", "Cline", "cli-agent,ide-extension"),
                                       ("https://tale.example", "Tale", "roleplay")):
        resp = httpx.post(env.url + "/api/v1/chat/completions", json=body, timeout=30, headers={
            "Authorization": f"Bearer {env.alice}", "HTTP-Referer": referer, "X-OpenRouter-Title": title,
            "X-OpenRouter-Categories": categories})
        assert resp.status_code == 200, resp.text
    env.flush()
    now = datetime.now(UTC).replace(tzinfo=None)
    window = {"start": (now - timedelta(hours=1)).isoformat() + "Z",
              "end": (now + timedelta(minutes=5)).isoformat() + "Z"}
    doc = query(env, metrics=["request_count"], dimensions=["category", "app"], time_range=window)
    assert {(r["category"], r["app"], r["request_count"]) for r in doc["data"]} == {
        ("cli-agent", "Cline", 1), ("roleplay", "Tale", 1)}
    users = query(env, metrics=["request_count"], dimensions=["external_user"], time_range=window)
    assert users["data"] == [{"external_user": "u-42", "request_count": 2}]
    today = now.date().isoformat()
    coding = env.get("/api/v1/datasets/app-rankings", category="coding", start_date=today, end_date=today).json()
    assert [r["app_name"] for r in coding["data"]] == ["Cline"]

    cfg = tmp_path / "tollway.yaml"
    cfg.write_text(yaml.safe_dump(raw_config(env.database, "http://127.0.0.1:9", admin_key=ADMIN)))
    out = subprocess.run([sys.executable, "-m", "tollway", "apps", "set-category", "https://tale.example",
                          "creative-writing", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    bad = subprocess.run([sys.executable, "-m", "tollway", "apps", "set-category", "https://tale.example",
                          "knitting", "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "knitting" in bad.stderr
    doc = query(env, metrics=["request_count"], dimensions=["category"], time_range=window,
                filters=[{"field": "app", "operator": "eq", "value": "Tale"}])
    assert doc["data"] == [{"category": "creative-writing", "request_count": 1}]


def test_february_2026_figures_through_rankings_daily(env: Env, tmp_path: Path) -> None:
    """The imported public rankings: Chinese models 4.12T tokens in 9-15 Feb and 5.16T in 16-22 Feb,
    ahead of US models, summed from rankings-daily's weekly rows."""
    rows = openrouter_weeks()
    path = write_import_csv(rows, tmp_path / "weekly.csv")
    with ledger(env.database) as engine:
        import_usage(engine, path, period="week")
    country = {r["slug"]: r["author_country_iso2"] for r in csv.DictReader(FLAT_CSV.open())}
    doc = env.client(ADMIN).datasets.get_rankings_daily(start_date="2026-02-09", end_date="2026-02-22",
                                                         period="week")
    raw = env.get("/api/v1/datasets/rankings-daily", start_date="2026-02-09", end_date="2026-02-22",
                  period="week").json()
    assert spec_errors("/components/schemas/RankingsDailyResponse", raw) == []
    by_country: dict[tuple[str, str], int] = {}
    for item in doc.data:
        if item.model_permaslug in country:  # the two weeks also hold this test's own traffic
            key = (item.date_, country[item.model_permaslug])
            by_country[key] = by_country.get(key, 0) + int(item.total_tokens)
    expected: dict[tuple[str, str], int] = {}
    for r in rows:
        if r["week"].isoformat() in ("2026-02-09", "2026-02-16"):
            key = (r["week"].isoformat(), country[r["slug"]])
            expected[key] = expected.get(key, 0) + r["prompt_tokens"] + r["completion_tokens"]
    assert by_country == expected
    assert round(by_country[("2026-02-09", "CN")] / 1e12, 2) == 4.12
    assert round(by_country[("2026-02-16", "CN")] / 1e12, 2) == 5.16
    assert by_country[("2026-02-09", "CN")] > by_country[("2026-02-09", "US")]
    assert by_country[("2026-02-16", "CN")] > by_country[("2026-02-16", "US")]
    assert [item.model_permaslug for item in doc.data if item.date_ == "2026-02-16"][-1] == "other"


def test_every_endpoint_through_the_async_sdk(env: Env) -> None:
    """The async client against the same server: each call parses, and matches the sync answer."""
    window = {"start_date": "2026-02-09", "end_date": "2026-02-22"}

    async def go() -> tuple[Any, ...]:
        async with env.client(ADMIN) as client:
            return await asyncio.gather(
                client.analytics.get_analytics_meta_async(),
                client.analytics.get_user_activity_async(),
                client.analytics.query_analytics_async(metrics=["tokens_total"], dimensions=["provider"],
                                                       time_range=RANGE),
                client.datasets.get_rankings_daily_async(**window),
                client.datasets.get_app_rankings_async(**window),
                client.datasets.get_session_cost_async())

    meta, activity, query_doc, rankings, apps, sessions = asyncio.run(go())
    sync = env.client(ADMIN)
    assert len(meta.data.metrics) == len(sync.analytics.get_analytics_meta().data.metrics)
    assert activity.data == sync.analytics.get_user_activity().data
    assert query_doc.data.metadata.row_count == 2  # anthropic and minimax
    assert rankings.data == sync.datasets.get_rankings_daily(**window).data
    assert [a.app_name for a in apps.result.data] == [a.app_name for a in
                                                      sync.datasets.get_app_rankings(**window).result.data]
    assert sessions.result.meta.window_days == 30


def test_long_ranges_read_whole_months_and_match_the_ledger(env: Env) -> None:
    """A range over whole and partial months (monthly, daily and hourly cubes together)."""
    start = datetime(2025, 12, 20, 7)
    with ledger(env.database) as engine:
        write(engine, [record(700_000 + i, start + timedelta(hours=13 * i), CHINA if i % 3 else US,
                              provider="minimax", key_id=env.bob_id, prompt_tokens=100 + i, completion_tokens=i,
                              latency_ms=100 + 10 * i, cost_nanousd=1000 * i) for i in range(200)])
    window = {"start": "2025-12-21T05:00:00Z", "end": "2026-03-02T11:00:00Z"}
    a, b = datetime(2025, 12, 21, 5), datetime(2026, 3, 2, 11)
    for granularity in (None, "month"):
        body: dict[str, Any] = {"metrics": ["tokens_total", "total_usage", "p50_latency"], "dimensions": ["model"],
                                "time_range": window, **({"granularity": granularity} if granularity else {})}
        got = {(r.get("date__month", "")[:7], r["model"]): r for r in query(env, **body)["data"]}
        month = "substr(CAST(created_at AS TEXT), 1, 7)" if granularity else "''"
        expected = env.sql(f"SELECT {month}, model, sum(prompt_tokens + completion_tokens), sum(cost_nanousd) "
                           "FROM generations WHERE created_at >= :a AND created_at < :b GROUP BY 1, 2", a=a, b=b)
        assert {k: (r["tokens_total"], r["total_usage"]) for k, r in got.items()} == \
            {(m, model): (int(t), pytest.approx(int(c) / 1e9)) for m, model, t, c in expected}
        for (m, model), row in got.items():
            lat = sorted(int(x) for (x,) in env.sql(
                f"SELECT latency_ms FROM generations WHERE created_at >= :a AND created_at < :b AND model = :model "
                f"AND {month} = :m AND status <> 'error' AND latency_ms IS NOT NULL", a=a, b=b, model=model, m=m))
            median = lat[(len(lat) + 1) // 2 - 1]
            lo, hi = bucket_bounds(token_bucket(median))
            assert lo <= row["p50_latency"] <= hi


def test_weeks_start_on_monday_and_add_up(env: Env) -> None:
    rows = query(env, metrics=["tokens_total"], granularity="week", time_range=RANGE)["data"]
    assert [r["date__week"][:10] for r in rows] == ["2026-02-09", "2026-02-16"]
    [(total,)] = env.sql("SELECT sum(prompt_tokens + completion_tokens) FROM generations")
    assert sum(r["tokens_total"] for r in rows) == int(total)


def test_by_app_and_by_key_from_the_ranking_cubes(env: Env) -> None:
    """Sum metrics by app or key alone read the small ranking cubes; the figures are the ledger's."""
    by_app = query(env, metrics=["request_count", "total_usage"], dimensions=["app"], time_range=RANGE)["data"]
    expected = env.sql("SELECT coalesce(app, app_title), count(*), sum(cost_nanousd) FROM generations GROUP BY 1")
    assert {r["app_id"]: (r["request_count"], r["total_usage"]) for r in by_app} == \
        {a: (int(n), pytest.approx(int(c) / 1e9)) for a, n, c in expected}
    mine = query(env, env.bob, metrics=["tokens_prompt"], granularity="day", time_range=RANGE)["data"]
    [(prompt,)] = env.sql("SELECT sum(prompt_tokens) FROM generations WHERE key_id = :k", k=env.bob_id)
    assert sum(r["tokens_prompt"] for r in mine) == int(prompt) and len(mine) == 14


def test_known_agents_get_their_default_category(env: Env) -> None:
    """catalog/data/agents.json names Claude Code a cli-agent; its traffic is counted there unprompted."""
    at = datetime(2026, 2, 10, 12)
    with ledger(env.database) as engine:
        write(engine, [record(600_001, at, US, key_id=env.alice_id, provider="anthropic", app_title="Claude Code",
                              prompt_tokens=9, completion_tokens=1)])
    rows = query(env, metrics=["tokens_total"], dimensions=["category"], time_range=RANGE,
                 filters=[{"field": "category", "operator": "eq", "value": "cli-agent"}])["data"]
    assert rows == [{"category": "cli-agent", "tokens_total": 10}]


def test_limits_and_order_in_sql_keep_the_full_answers_rows(env: Env) -> None:
    """A limited answer (ordered and cut in SQL, or read in whole-period chunks) is the start of
    the unlimited one."""
    for body in ({"metrics": ["total_usage", "request_count"], "dimensions": ["model", "api_key_id"],
                  "order_by": {"field": "total_usage", "direction": "desc"}},
                 {"metrics": ["error_rate"], "dimensions": ["finish_reason", "api_key_id"],
                  "order_by": {"field": "error_rate", "direction": "asc"}},
                 {"metrics": ["tokens_total"], "dimensions": ["model"], "granularity": "day"},
                 {"metrics": ["tokens_total"], "dimensions": ["app"], "granularity": "week"},
                 {"metrics": ["request_count"], "granularity": "hour"},
                 {"metrics": ["request_count", "p50_latency"], "granularity": "day"}):
        window = {"start": "2026-02-09T05:00:00Z", "end": "2026-02-22T19:00:00Z"}
        full = query(env, **body, time_range=window, limit=10_000)["data"]
        assert len(full) > 3
        cut = query(env, **body, time_range=window, limit=3)
        assert cut["metadata"]["truncated"] and len(cut["data"]) == 3
        if "order_by" in body:  # ties in the ordered metric may come in either order
            field = body["order_by"]["field"]
            assert [r[field] for r in cut["data"]] == [r[field] for r in full[:3]]
        else:
            assert cut["data"] == full[:3]


def test_derived_dimensions_make_one_row_per_label(env: Env) -> None:
    """Two models of one author are one row by author (not one per model)."""
    other = "anthropic/claude-sonnet-4.5"
    with ledger(env.database) as engine:
        write(engine, [record(800_000 + i, DAY0 + timedelta(hours=5 * i), other, key_id=env.alice_id,
                              provider="anthropic", prompt_tokens=10, completion_tokens=1) for i in range(6)])
    rows = query(env, metrics=["tokens_total"], dimensions=["author"], time_range=RANGE)["data"]
    authors = [r["author"] for r in rows]
    assert len(authors) == len(set(authors)) and "anthropic" in authors
    [(total,)] = env.sql("SELECT sum(prompt_tokens + completion_tokens) FROM generations "
                         "WHERE model LIKE 'anthropic/%'")
    assert next(r for r in rows if r["author"] == "anthropic")["tokens_total"] == int(total)


def test_hourly_percentiles_read_at_most_three_hours(env: Env) -> None:
    """Histograms are kept by day: hourly percentiles come from a short window's rows."""
    body = {"metrics": ["p50_latency"], "dimensions": ["model"], "granularity": "hour"}
    short = query(env, **body, time_range={"start": "2026-02-10T00:00:00Z", "end": "2026-02-10T03:00:00Z"})
    lat = env.sql("SELECT model, latency_ms FROM generations WHERE created_at >= :a AND created_at < :b "
                  "AND status <> 'error'", a=datetime(2026, 2, 10), b=datetime(2026, 2, 10, 3))
    assert short["data"] and len(short["data"]) == len(lat)  # one request per model and hour here
    for row in short["data"]:
        lo, hi = bucket_bounds(token_bucket(next(ms for m, ms in lat if m == row["model"])))
        assert lo <= row["p50_latency"] <= hi
    for dims in (["model"], []):
        resp = httpx.post(env.url + "/api/v1/analytics/query",
                          json={**body, "dimensions": dims, "time_range": RANGE},
                          headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
        assert resp.status_code == 400 and "time_range" in resp.json()["error"]["message"]


def test_rankings_by_week_over_partial_weeks_add_the_weekly_and_daily_cubes(env: Env) -> None:
    """Whole weeks come from the weekly cube, the partial weeks at either end from the daily one."""
    with ledger(env.database) as engine:
        write(engine, [record(900_000 + i, datetime(2026, 2, 4, 10) + timedelta(days=i), US, key_id=env.bob_id,
                              provider="anthropic", prompt_tokens=7, completion_tokens=1) for i in range(20)])
    doc = env.get("/api/v1/datasets/rankings-daily", start_date="2026-02-04", end_date="2026-02-23",
                  period="week").json()
    got = {(r["date"], r["model_permaslug"]): int(r["total_tokens"]) for r in doc["data"]
           if r["model_permaslug"] != "other"}
    week = "date(created_at, 'weekday 0', '-6 days')" if env.database.startswith("sqlite") else \
        "CAST(date_trunc('week', created_at) AS date)"
    expected = env.sql(f"SELECT {week}, model, sum(prompt_tokens + completion_tokens) FROM generations "
                       "WHERE created_at >= :a AND created_at < :b GROUP BY 1, 2",
                       a=datetime(2026, 2, 4), b=datetime(2026, 2, 24))
    assert got == {(str(w)[:10], m): int(t) for w, m, t in expected}
    assert {d for d, _ in got} == {"2026-02-02", "2026-02-09", "2026-02-16", "2026-02-23"}
