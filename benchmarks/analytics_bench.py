"""Analytics benchmark: ingest synthetic generations into ledger + rollups, then time reports.

    /work/venv/bin/python benchmarks/analytics_bench.py --records 100000000 \
        --database postgresql://postgres@127.0.0.1/bench [--stop-after N] [--workload agentic|uniform] \
        [--path bulk|live] [--batch-size N] [--workers N] [--parquet /tmp/bench.parquet]

Builds ``--records`` generation records (default 100 million) spread over one year, as the
gateway writes them: time order, every column filled (upstream ids, timings, attempt
lists after fallbacks), ~300 models from 40 authors with Zipf-like popularity, 8
providers, 60 apps, 5,000 keys.  The default ``agentic`` workload interleaves tasks, each
on one key, its app and one model (30% agent runs with growing, mostly cached prompts);
``uniform`` draws key, model and app anew for every record, the rollups' worst case.
Records go through the real ``LedgerWriter`` with the ``apply_rollups`` hook (``--path
bulk``, the default: ``LedgerWriter.write_bulk``, set-based SQL, batches of 50,000, two at
once on PostgreSQL; ``--path live``: the gateway's writer thread, batches of 5,000), and
it reports:

* ingest throughput (records/s) into the ledger *plus* rollups (only the writes are timed);
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

from sqlalchemy import Connection, Engine, func, select

from tollway.analytics.attribution import Attribution
from tollway.analytics.rankings import RankingQuery, rankings
from tollway.ledger import rollups, schema
from tollway.ledger.db import create_db_engine, migrate
from tollway.ledger.records import GenerationRecord
from tollway.ledger.writer import LedgerWriter

YEAR_START = datetime(2025, 3, 3)  # a Monday
AUTHORS = ["anthropic", "openai", "google", "x-ai", "meta-llama", "mistralai", "deepseek", "qwen", "moonshotai",
           "minimax", "z-ai", "xiaomi", "stepfun", "tencent", "baidu", "bytedance-seed", "nvidia", "amazon",
           "cohere", "ai21", "microsoft", "ibm-granite", "arcee-ai", "inception", "liquid", "perplexity",
           "nousresearch", "allenai", "meituan", "kwaipilot", "inclusionai", "upstage", "sakana", "sarvamai",
           "tngtech", "thudm", "01-ai", "reka", "writer", "relace"]


def _population(rng: random.Random) -> tuple[list[str], list[float], list[str]]:
    """~300 models from 40 authors with Zipf-like popularity (as in real rankings), 8 providers."""
    models = [f"{a}/model-{i}" for a in AUTHORS for i in range(8)][:300]
    weights = [1 / (i + 1) ** 1.1 for i in range(len(models))]
    rng.shuffle(weights)
    return models, weights, [f"provider-{i}" for i in range(8)]


def _record(rng: random.Random, created: datetime, key: str, model: str, provider: str, app: str | None,
            session: str | None, prompt: int, completion: int, cached: int, cost: int,
            finish: str) -> GenerationRecord:
    """A record with every field the gateway fills: upstream ids, timings and, after a
    fallback or a failure, the attempt list (1% fail, 2% succeed on a second provider)."""
    upstream_model = model.split("/", 1)[1]
    streamed = rng.random() < 0.7
    latency = 250 + prompt // 2000 + completion * rng.randint(8, 30)
    gen_id = f"gen-{int(created.timestamp())}-{rng.getrandbits(80):020x}"
    luck = rng.random()
    if luck < 0.01:  # the upstream failed and no fallback was left
        return GenerationRecord(
            id=gen_id, key_id=key, created_at=created, model=model, provider=provider,
            upstream_model=upstream_model, app=app, session_id=session, status="error", http_status=502,
            streamed=streamed, latency_ms=latency // 4, error=f"{provider}: upstream returned 503",
            attempts=[{"provider": provider, "model": model, "upstream_model": upstream_model, "status": 503,
                       "latency_ms": latency // 4, "message": "upstream returned 503"}])
    attempts = None
    if luck < 0.03:
        attempts = [{"provider": "provider-fallback", "model": model, "upstream_model": upstream_model,
                     "status": 429, "latency_ms": 40, "message": "rate limited"},
                    {"provider": provider, "model": model, "upstream_model": upstream_model, "status": 200,
                     "latency_ms": latency}]
    return GenerationRecord(
        id=gen_id, key_id=key, created_at=created, model=model, provider=provider, upstream_model=upstream_model,
        upstream_id=f"chatcmpl-{rng.getrandbits(96):024x}", app=app, session_id=session,
        prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
        reasoning_tokens=completion // 4, cost_nanousd=cost, finish_reason=finish, native_finish_reason=finish,
        streamed=streamed, latency_ms=latency, ttft_ms=latency // 5 if streamed else None, attempts=attempts)


def synthetic_uniform(n: int, seed: int = 1) -> Iterator[GenerationRecord]:
    """The worst case for the rollups: every record draws its key, model and app at random.

    Key, model and app are independent per request (no task ever keeps its model or key),
    so nearly every record is a cell of its own in the hourly model x provider x app x key
    cube and the rollups compress nothing.
    """
    rng = random.Random(seed)
    models, weights, providers = _population(rng)
    apps = [f"https://app{i}.example" for i in range(60)] + [""] * 20
    step = 365 * 86400 / n
    picks = rng.choices(range(len(models)), weights=weights, k=min(n, 1_000_000))
    for i in range(n):
        pick = picks[i % len(picks)]
        prompt = int(math.exp(rng.gauss(8.5, 1.4)))  # median ~5k, long tail past 100k
        completion = int(math.exp(rng.gauss(5.5, 1.1)))
        cached = prompt * rng.randint(0, 9) // 10
        created = YEAR_START + timedelta(seconds=i * step)
        yield _record(rng, created, f"key-{rng.randrange(5000)}", models[pick],
                      providers[pick % 4 + rng.randrange(2) * 4], rng.choice(apps) or None,
                      f"s-{i // 40}" if rng.random() < 0.3 else None, prompt, completion, cached,
                      prompt * 300 + completion * 1200, "stop")


WORKLOADS = ("agentic", "uniform")


class _Task:
    """One task (a chat or an agent run): one key, app, model and session, several requests."""

    __slots__ = ("app", "context", "key", "left", "model", "providers", "session", "step")

    def __init__(self, key: str, app: str | None, model: str, providers: tuple[str, str],
                 session: str | None, requests: int, context: int) -> None:
        self.key, self.app, self.model, self.providers = key, app, model, providers
        self.session, self.left, self.context, self.step = session, requests, context, 0


def synthetic_agentic(n: int, seed: int = 1, concurrent_tasks: int = 200) -> Iterator[GenerationRecord]:
    """n records over one year, in time order, from interleaved tasks.

    Each task belongs to one key (key popularity Zipf-like: a few teams run most agents),
    the key's app, one model (Zipf-like over ~300 models) and, for agent runs, one session.
    30% of tasks are agent runs of ~8-400 requests whose prompt grows with the context
    and is mostly served from cache (~90% of records); the rest are chats of 1-3 requests.
    ``concurrent_tasks`` run at once, so at the default 100M records a year (3 per second)
    an agent request of a given task comes about once a minute.
    """
    rng = random.Random(seed)
    models, model_weights, providers = _population(rng)
    keys = [f"key-{i}" for i in range(5000)]
    key_weights = [1 / (i + 1) ** 0.9 for i in range(len(keys))]
    apps = [f"https://app{i}.example" for i in range(60)] + [None] * 20
    key_app = {key: apps[rng.randrange(len(apps))] for key in keys}
    model_picks = itertools.cycle(rng.choices(range(len(models)), weights=model_weights, k=100_003))
    key_picks = itertools.cycle(rng.choices(keys, weights=key_weights, k=100_019))
    sessions = itertools.count()

    def new_task() -> _Task:
        pick = next(model_picks)
        model = models[pick]
        pair = (providers[pick % 4], providers[pick % 4 + 4])
        key = next(key_picks)
        if rng.random() < 0.3:
            return _Task(key, key_app[key], model, pair, f"task-{next(sessions)}",
                         int(math.exp(rng.gauss(3.5, 1.0))) + 8, int(math.exp(rng.gauss(8.5, 0.8))))
        return _Task(key, key_app[key], model, pair, None, rng.randint(1, 3), int(math.exp(rng.gauss(7.0, 1.4))))

    active = [new_task() for _ in range(concurrent_tasks)]
    step = 365 * 86400 / n
    for i in range(n):
        slot = rng.randrange(concurrent_tasks)
        task = active[slot]
        created = YEAR_START + timedelta(seconds=i * step)
        completion = int(math.exp(rng.gauss(5.5, 1.1)))
        prompt = task.context
        # Agent turns re-send the whole context: all but the newest turn comes from cache.
        cached = prompt - prompt // (task.step + 2) if task.session else prompt * rng.randint(0, 5) // 10
        task.context += completion + int(math.exp(rng.gauss(6.5, 1.0)))
        if task.context > 200_000:  # past a 200k window, agents compact their context
            task.context //= 5
        task.step += 1
        task.left -= 1
        if task.left == 0:
            active[slot] = new_task()
        yield _record(rng, created, task.key, task.model,
                      task.providers[0] if rng.random() < 0.8 else task.providers[1], task.app, task.session,
                      prompt, completion, cached, (prompt - cached) * 300 + cached * 30 + completion * 1200,
                      "tool_calls" if task.session and task.left else "stop")


def ledger_for_bench(database: str, records: int) -> tuple[Engine, int]:
    """The migrated ledger at ``database`` and its generation count, built first (bulk path,
    this module's workload) when it holds fewer than ``records``: the query benchmarks keep
    one ledger and reuse it run after run."""
    engine = create_db_engine(database)
    migrate(engine)
    with engine.connect() as conn:
        have = conn.execute(select(func.count()).select_from(schema.generations)).scalar() or 0
    if have < records:
        print(f"building the ledger: {records:,} records", file=sys.stderr, flush=True)
        spent = ingest(database, records, 5000, "bulk")
        print(f"ingest: {spent:.0f} s, {records / spent:,.0f} records/s", file=sys.stderr)
        with engine.connect() as conn:
            have = conn.execute(select(func.count()).select_from(schema.generations)).scalar() or 0
    return engine, int(have)


def busiest_key(conn: Connection) -> str:
    """The key with the most requests (the hard case for a plain key's views)."""
    k = rollups.usage_daily_key
    return conn.execute(select(k.c.key_id).group_by(k.c.key_id).order_by(func.sum(k.c.requests).desc())
                        .limit(1)).scalar() or ""


def ingest(database: str, n: int, batch_size: int, path: str = "bulk", stop_after: int | None = None,
           workload: str = "agentic", workers: int | None = None) -> float:
    """Seconds spent writing (ledger + rollups) the first ``stop_after`` (default all) of n records.

    ``path="live"`` goes through the writer thread exactly as the gateway configures it (it
    picks row by row or set-based per batch); ``"bulk"`` through ``LedgerWriter.write_bulk``,
    handed forty batches at a time (it prepares the next batch while the database writes;
    on PostgreSQL ``workers`` batches at once, by default ``BULK_WORKERS_PG``).  Records are
    generated between those calls, outside the timed part.
    """
    engine = create_db_engine(database)
    migrate(engine)
    writer = LedgerWriter(engine, batch_size=batch_size, hooks=[rollups.apply_rollups])
    spent = 0.0
    chunk: list[GenerationRecord] = []
    chunk_size = batch_size * 40 if path == "bulk" else batch_size
    report_every = chunk_size * max(1, (stop_after or n) // 20 // chunk_size)
    done = 0
    generate = synthetic_agentic if workload == "agentic" else synthetic_uniform
    for record in itertools.islice(generate(n), stop_after):
        chunk.append(record)
        if len(chunk) == chunk_size:
            took = _write(writer, chunk, path, batch_size, workers)
            spent += took
            done += len(chunk)
            chunk = []
            if done % report_every == 0:
                print(f"  {done:,} records, {done / spent:,.0f}/s (last {chunk_size:,}: {chunk_size / took:,.0f}/s)",
                      file=sys.stderr, flush=True)
    if chunk:
        spent += _write(writer, chunk, path, batch_size, workers)
    writer.close()
    engine.dispose()
    return spent


def _write(writer: LedgerWriter, chunk: list[GenerationRecord], path: str, batch_size: int,
           workers: int | None) -> float:
    # Only the write is timed: generating synthetic records is the benchmark's own cost.
    t = time.perf_counter()
    if path == "bulk":
        writer.write_bulk(chunk, batch_size=batch_size, workers=workers)
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
    parser.add_argument("--workers", type=int, default=None,
                        help="Bulk path on PostgreSQL: batches written at once (default: the writer's, 2).")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="Ingest only the first N records of the --records workload (its first days, "
                             "at its density: e.g. 2,000,000 of 100,000,000 is the year's first week).")
    parser.add_argument("--workload", choices=WORKLOADS, default="agentic",
                        help="agentic: records come from interleaved tasks, each on one key, app and model "
                             "(the gateway's traffic); uniform: key, model and app drawn anew for every record, "
                             "the worst case for the rollups.")
    parser.add_argument("--parquet", type=Path, default=None, help="Also export and scan with DuckDB.")
    args = parser.parse_args()
    batch_size = args.batch_size or (50_000 if args.path == "bulk" else 5000)
    taken = min(args.records, args.stop_after or args.records)
    print(f"ingesting {taken:,} of {args.records:,} records into {args.database} ({args.path} path, "
          f"batches of {batch_size:,}, {args.workload} workload)")
    spent = ingest(args.database, args.records, batch_size, args.path, args.stop_after, args.workload,
                   args.workers)
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
