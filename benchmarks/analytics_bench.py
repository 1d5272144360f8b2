"""Analytics benchmark: ingest synthetic generations into ledger + rollups, then time reports.

    /work/venv/bin/python benchmarks/analytics_bench.py --records 2000000 \
        --database sqlite:////tmp/bench.db [--path bulk|live] [--batch-size N] [--parquet /tmp/bench.parquet]

Builds ``--records`` generation records (default 100 million) spread over one year, as the
gateway would produce them (time order, realistic request sizes, ~300 models from 40
authors, 12 providers, 60 apps, 5,000 keys, agentic sessions), writes them through the
real ``LedgerWriter`` with the ``apply_rollups`` hook (``--path bulk``, the default:
``LedgerWriter.write_bulk``, set-based SQL, batches of 50,000; ``--path live``: the
gateway's writer thread, batches of 5,000), and reports:

* ingest throughput (records/s) into the ledger *plus* rollups;
* weekly rankings by origin over the whole year from the rollups (median of 5 runs);
* optionally, the same ranking scanned from an exported Parquet file with DuckDB.

It is a benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import itertools
import math
import random
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from tollway.analytics.attribution import Attribution
from tollway.analytics.rankings import RankingQuery, rankings
from tollway.ledger import rollups
from tollway.ledger.db import create_db_engine, migrate
from tollway.ledger.records import GenerationRecord
from tollway.ledger.writer import LedgerWriter

YEAR_START = datetime(2025, 3, 3)  # a Monday
AUTHORS = ["anthropic", "openai", "google", "x-ai", "meta-llama", "mistralai", "deepseek", "qwen", "moonshotai",
           "minimax", "z-ai", "xiaomi", "stepfun", "tencent", "baidu", "bytedance-seed", "nvidia", "amazon",
           "cohere", "ai21", "microsoft", "ibm-granite", "arcee-ai", "inception", "liquid", "perplexity",
           "nousresearch", "allenai", "meituan", "kwaipilot", "inclusionai", "upstage", "sakana", "sarvamai",
           "tngtech", "thudm", "01-ai", "reka", "writer", "relace"]


def synthetic(n: int, seed: int = 1) -> Iterator[GenerationRecord]:
    """n records over one year, in time order; sizes log-normal, a few agentic sessions."""
    rng = random.Random(seed)
    models = [f"{a}/model-{i}" for a in AUTHORS for i in range(8)][:300]
    # Zipf-like popularity, as in real rankings: a few models carry most tokens.
    weights = [1 / (i + 1) ** 1.1 for i in range(len(models))]
    rng.shuffle(weights)
    providers = [f"provider-{i}" for i in range(12)]
    apps = [f"https://app{i}.example" for i in range(60)] + [""] * 20
    step = 365 * 86400 / n
    picks = rng.choices(range(len(models)), weights=weights, k=min(n, 1_000_000))
    for i in range(n):
        model = models[picks[i % len(picks)]]
        prompt = int(math.exp(rng.gauss(8.5, 1.4)))  # median ~5k, long tail past 100k
        completion = int(math.exp(rng.gauss(5.5, 1.1)))
        cached = prompt * rng.randint(0, 9) // 10
        yield GenerationRecord(
            id=f"gen-{i:012d}", key_id=f"key-{rng.randrange(5000)}",
            created_at=YEAR_START + timedelta(seconds=i * step), model=model,
            provider=providers[hash(model) % 4 + rng.randrange(2) * 4], app=rng.choice(apps) or None,
            session_id=f"s-{i // 40}" if rng.random() < 0.3 else None,
            prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
            reasoning_tokens=completion // 4, cost_nanousd=prompt * 300 + completion * 1200,
            status="success" if rng.random() > 0.01 else "error")


def ingest(database: str, n: int, batch_size: int, path: str = "bulk", stop_after: int | None = None) -> float:
    """Seconds spent writing (ledger + rollups) the first ``stop_after`` (default all) of n records.

    ``path="live"`` goes through the writer thread exactly as the gateway configures it (it
    picks row by row or set-based per batch); ``"bulk"`` through ``LedgerWriter.write_bulk``,
    handed ten batches at a time (it prepares the next batch while the database writes one).
    """
    engine = create_db_engine(database)
    migrate(engine)
    writer = LedgerWriter(engine, batch_size=batch_size, hooks=[rollups.apply_rollups])
    spent = 0.0
    chunk: list[GenerationRecord] = []
    chunk_size = batch_size * 10 if path == "bulk" else batch_size
    done = 0
    for record in itertools.islice(synthetic(n), stop_after):
        chunk.append(record)
        if len(chunk) == chunk_size:
            spent += _write(writer, chunk, path, batch_size)
            done += len(chunk)
            chunk = []
            if done % (chunk_size * max(1, 500_000 // chunk_size)) == 0:
                print(f"  {done:,} records, {done / spent:,.0f}/s", file=sys.stderr)
    if chunk:
        spent += _write(writer, chunk, path, batch_size)
    writer.close()
    engine.dispose()
    return spent


def _write(writer: LedgerWriter, chunk: list[GenerationRecord], path: str, batch_size: int) -> float:
    # Only the write is timed: generating synthetic records is the benchmark's own cost.
    t = time.perf_counter()
    if path == "bulk":
        writer.write_bulk(chunk, batch_size=batch_size)
    else:
        for record in chunk:
            writer.submit(record)
        writer.flush()
    return time.perf_counter() - t


def time_rankings(database: str, runs: int = 5) -> tuple[float, int, int]:
    engine = create_db_engine(database)
    query = RankingQuery(by="origin", period="week", start=YEAR_START.date(),
                         end=YEAR_START.date() + timedelta(days=363))  # 52 whole weeks
    times = []
    with engine.connect() as conn:
        attribution = Attribution.load(conn, None, with_keys=False)
        for _ in range(runs):
            t = time.perf_counter()
            doc = rankings(conn, query, attribution)
            times.append(time.perf_counter() - t)
        cube = conn.execute(select(func.count()).select_from(rollups.usage_weekly_model)).scalar_one()
    engine.dispose()
    return statistics.median(times), len(doc["periods"]), int(cube)


def time_parquet(database: str, path: Path) -> tuple[float, float]:
    from tollway.analytics.export import export_ledger
    from tollway.analytics.rankings import build_report
    from tollway.analytics.scan import scan_grouped

    engine = create_db_engine(database)
    t = time.perf_counter()
    export_ledger(engine, path)
    exported = time.perf_counter() - t
    engine.dispose()
    query = RankingQuery(by="origin", period="week")
    t = time.perf_counter()
    build_report(scan_grouped(str(path), query), query, Attribution().resolver("origin"))
    return exported, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000_000)
    parser.add_argument("--database", default="sqlite:///./bench-analytics.db")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="Records per transaction (default 50,000 bulk, 5,000 live).")
    parser.add_argument("--path", choices=("bulk", "live"), default="bulk",
                        help="bulk: LedgerWriter.write_bulk, set-based rollups in SQL (for imports); "
                             "live: the gateway's writer thread with the apply_rollups hook.")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="Ingest only the first N records of the --records workload (its first days, "
                             "at its density: e.g. 2,000,000 of 100,000,000 is the year's first week).")
    parser.add_argument("--parquet", type=Path, default=None, help="Also export and scan with DuckDB.")
    args = parser.parse_args()
    batch_size = args.batch_size or (50_000 if args.path == "bulk" else 5000)
    taken = min(args.records, args.stop_after or args.records)
    print(f"ingesting {taken:,} of {args.records:,} records into {args.database} ({args.path} path, "
          f"batches of {batch_size:,})")
    spent = ingest(args.database, args.records, batch_size, args.path, args.stop_after)
    print(f"ingest: {spent:.1f} s, {taken / spent:,.0f} records/s into ledger + rollups "
          "(same transactions)")
    median, weeks, cube = time_rankings(args.database)
    print(f"weekly rankings by origin over one year ({weeks} weeks) from rollups: {median * 1000:.0f} ms "
          f"(median of 5; read from usage_weekly_model, {cube:,} rows)")
    if args.parquet is not None:
        exported, scanned = time_parquet(args.database, args.parquet)
        print(f"export to Parquet: {exported:.1f} s; DuckDB scan of the year by origin: {scanned * 1000:.0f} ms")
    print(f"date: {date.today()}")


if __name__ == "__main__":
    main()
