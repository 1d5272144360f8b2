"""Tokens per task (exact) and per request (bucketed) against values computed here."""

from __future__ import annotations

import math
import random
from datetime import date, datetime, timedelta

from tollway.analytics.distributions import request_distribution, task_distribution

from .helpers import db_url, ledger, record, write

__all__ = ["db_url"]


def _nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def test_agentic_tasks_show_in_the_percentiles(db_url: str) -> None:
    rng = random.Random(3)
    start = datetime(2026, 2, 16)
    records = []
    for i in range(400):
        # Most tasks are one chat turn; one in ten is an agent loop of up to 60 large turns.
        session = f"task-{i // 4}" if i % 40 else f"agent-{i}"
        turns = 1 if not session.startswith("agent") else rng.randint(20, 60)
        for _ in range(turns):
            records.append(record(len(records), start + timedelta(minutes=len(records) % 5000), "a/m",
                                  session_id=session, prompt_tokens=rng.randint(100, 30_000),
                                  completion_tokens=rng.randint(10, 2_000)))
    # A task that started before the range is not in it, even though it continues into it.
    records.append(record(len(records), datetime(2026, 2, 10), "a/m", session_id="task-0",
                          prompt_tokens=5, completion_tokens=5))
    with ledger(db_url) as engine:
        write(engine, records, batch_size=97)
        with engine.connect() as conn:
            tasks = task_distribution(conn, start=date(2026, 2, 16), end=date(2026, 2, 28), top=3)
            requests = request_distribution(conn)
    per_task: dict[str, int] = {}
    first: dict[str, datetime] = {}
    for r in records:
        per_task[r.session_id or ""] = per_task.get(r.session_id or "", 0) + r.prompt_tokens + r.completion_tokens
        first[r.session_id or ""] = min(first.get(r.session_id or "", r.created_at), r.created_at)
    in_range = {s: t for s, t in per_task.items() if first[s] >= datetime(2026, 2, 16)}
    values = list(in_range.values())
    assert tasks["tasks"] == len(values)
    assert tasks["total_tokens"] == sum(values)
    assert tasks["max_tokens"] == max(values)
    for q in (0.5, 0.9, 0.99):
        assert tasks["percentiles"][f"p{round(q * 100)}"] == _nearest_rank(values, q)
    assert tasks["percentiles"]["p99"] > 100_000 > tasks["percentiles"]["p50"]
    big = [v for v in values if v >= 100_000]
    assert tasks["agentic_tasks"] == len(big)
    assert tasks["agentic_token_share"] == sum(big) / sum(values)
    assert [t["tokens"] for t in tasks["largest"]] == sorted(values, reverse=True)[:3]
    sizes = [r.prompt_tokens + r.completion_tokens for r in records]
    assert requests["requests"] == len(sizes) and requests["exact"] is False
    for q in (0.5, 0.9, 0.99):
        p = requests["percentiles"][f"p{round(q * 100)}"]
        assert p["low"] <= _nearest_rank(sizes, q) <= p["high"]
