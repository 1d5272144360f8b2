"""Query latency of OpenRouter's analytics and datasets APIs over a year-long ledger.

    .venv/bin/python benchmarks/analytics_api_bench.py --database sqlite:////work/bench-data/api10m.db \\
        --records 10000000

Builds the ledger once with analytics_bench.py's agentic workload and bulk writer (skipped
when the ledger already holds ``--records`` generations, so keep it, e.g. under
/work/bench-data/), then runs every query type ``--runs`` times through the same
functions the handlers call (no HTTP), and prints p50/p95 per query in milliseconds.  Each
query is first called ``--warmup`` times untimed (default 1), so p95 is that of a serving
process rather than including the process's first, cold call.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analytics_bench import YEAR_START, busiest_key, ledger_for_bench

from tollway.analytics import datasets
from tollway.analytics.attribution import Attribution
from tollway.analytics.query import Viewer, run_query
from tollway.analytics.query_spec import parse_query
from tollway.analytics.rankings import RankingQuery, rankings
from tollway.ledger import schema

ADMIN = Viewer(key_id=None, is_admin=True)
END = YEAR_START + timedelta(days=364)
YEAR = {"start": YEAR_START.isoformat() + "Z", "end": END.isoformat() + "Z"}
MONTH = {"start": (END - timedelta(days=30, hours=5)).isoformat() + "Z",
         "end": (END - timedelta(hours=7)).isoformat() + "Z"}
HOURS = {"start": (END - timedelta(hours=3)).isoformat() + "Z", "end": END.isoformat() + "Z"}


def queries(key_id: str, busiest: str) -> dict[str, tuple[Viewer, dict[str, Any]]]:
    own = Viewer(key_id=key_id, is_admin=False)
    top = Viewer(key_id=busiest, is_admin=False)
    four_weeks = {"start": (END - timedelta(days=28)).isoformat() + "Z", "end": END.isoformat() + "Z"}
    return {
        "year by model, day": (ADMIN, {"metrics": ["request_count", "tokens_total", "total_usage"],
                                       "dimensions": ["model"], "granularity": "day", "time_range": YEAR}),
        "year totals, all sum metrics": (ADMIN, {"metrics": ["request_count", "tokens_total", "total_usage",
                                                             "error_rate", "fallback_rate", "cache_hit_rate",
                                                             "avg_latency", "avg_throughput"], "time_range": YEAR}),
        "year percentiles by model": (ADMIN, {"metrics": ["p50_latency", "p99_latency", "p90_throughput",
                                                          "ttft_p90"], "dimensions": ["model"], "time_range": YEAR}),
        "year by author x provider_country, month": (ADMIN, {"metrics": ["tokens_total"], "granularity": "month",
                                                             "dimensions": ["author", "provider_country"],
                                                             "time_range": YEAR}),
        "30 days (partial) by app x finish_reason": (ADMIN, {"metrics": ["request_count", "error_rate"],
                                                             "dimensions": ["app", "finish_reason"],
                                                             "time_range": MONTH}),
        "year by api_key_id, week": (ADMIN, {"metrics": ["total_usage"], "dimensions": ["api_key_id"],
                                             "granularity": "week", "time_range": YEAR}),
        "non-admin year by model, day": (own, {"metrics": ["request_count", "tokens_total"],
                                               "dimensions": ["model"], "granularity": "day", "time_range": YEAR}),
        "busiest key: year by model, ordered": (top, {"metrics": ["tokens_total", "total_usage"],
                                                      "dimensions": ["model"], "time_range": YEAR}),
        "4 weeks by category, key filter": (ADMIN, {"metrics": ["tokens_total"], "dimensions": ["category"],
                                                    "filters": [{"field": "api_key_id", "operator": "eq",
                                                                 "value": busiest}],
                                                    "time_range": four_weeks}),
        "3 h by minute": (ADMIN, {"metrics": ["request_count", "p50_latency"], "granularity": "minute",
                                  "time_range": HOURS}),
        "3 h by generation_id": (ADMIN, {"metrics": ["tokens_total"], "dimensions": ["generation_id"],
                                         "time_range": HOURS, "limit": 10_000}),
    }


def dataset_calls(key_id: str, busiest: str, attribution: Attribution) -> dict[str, Callable[[Any], Any]]:
    now = END + timedelta(days=1)
    own = Viewer(key_id=key_id, is_admin=False)
    year = {"start_date": YEAR_START.date().isoformat(), "end_date": END.date().isoformat()}
    return {
        "rankings-daily year, day": lambda c: datasets.rankings_daily(
            c, datasets.RankingsParams.parse(year, now), ADMIN),
        "rankings-daily year, week": lambda c: datasets.rankings_daily(
            c, datasets.RankingsParams.parse({**year, "period": "week"}, now), ADMIN),
        "rankings-daily 30 d, context 100K": lambda c: datasets.rankings_daily(
            c, datasets.RankingsParams.parse({"context_bucket": "100K"}, now), ADMIN),
        "app-rankings trending": lambda c: datasets.app_rankings(
            c, datasets.AppRankingsParams.parse({"sort": "trending"}, now), ADMIN),
        "session-cost 30 d": lambda c: datasets.session_cost(c, datasets.SessionCostParams.parse({}, now), ADMIN),
        "activity (non-admin)": lambda c: datasets.activity(
            c, datasets.ActivityParams.parse({}, now.date()), own),
        "rankings: busiest key by model, weekly, all": lambda c: rankings(
            c, RankingQuery(by="model", period="week", key_id=busiest), attribution),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", default=None, help="Run only the queries whose name contains this.")
    parser.add_argument("--warmup", type=int, default=1,
                        help="Untimed calls per query before its timed runs (0: the first timed call is the "
                             "process's cold one, e.g. PostgreSQL's first read of the query's tables).")
    args = parser.parse_args()
    engine, _ = ledger_for_bench(args.database, args.records)
    with engine.connect() as conn:
        key_id = conn.execute(select(schema.generations.c.key_id).limit(1)).scalar() or ""
        busiest = busiest_key(conn)
        attribution = Attribution.load(conn, None, with_keys=True)
        work: dict[str, Callable[[Any], Any]] = {}
        for name, (viewer, body) in queries(key_id, busiest).items():
            parsed = parse_query(body, END)
            work[name] = lambda c, q=parsed, v=viewer: run_query(c, q, v, attribution)
        work.update(dataset_calls(key_id, busiest, attribution))
        print(f"{'query':45} {'p50 ms':>8} {'p95 ms':>8}")
        for name, call in work.items():
            if args.only and args.only not in name:
                continue
            for _ in range(args.warmup):
                call(conn)
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                call(conn)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
            print(f"{name:45} {statistics.median(times):8.1f} {p95:8.1f}", flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
