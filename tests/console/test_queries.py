"""The console's ledger queries on both ledgers: day series, the paged and filtered log, tasks."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from tests.analytics.helpers import db_url, ledger, record, write
from tollway.console import queries

__all__ = ["db_url"]

START = datetime(2026, 1, 5, 12)


def test_series_log_pages_and_tasks(db_url: str) -> None:
    # 90 days, one generation a day alternating between two keys and two models; day 0 is oldest.
    records = [record(i, START + timedelta(days=i), "a/rare" if i in (3, 80) else "b/common",
                      key_id=f"k{i % 2}", prompt_tokens=100 + i, completion_tokens=10, cost_nanousd=1_000 * i,
                      session_id=f"task-{i % 5}") for i in range(90)]
    with ledger(db_url) as engine:
        write(engine, records)
        with engine.connect() as conn:
            series = queries.activity_series(conn, key_id="k1", start=START.date(), end=START.date() + timedelta(9))
            assert [d["requests"] for d in series["days"]] == [0, 1] * 5
            assert series["totals"]["cost_nanousd"] == sum(1_000 * i for i in range(1, 10, 2))
            assert queries.latest_day(conn, key_id="k0") == (START + timedelta(days=88)).date()

            first = queries.generation_log(conn, key_id=None, limit=50)
            assert [r["id"] for r in first["data"]] == [f"gen-{i:08d}" for i in range(89, 39, -1)]
            before = datetime.fromisoformat(first["next_before"].removesuffix("Z"))
            rest = queries.generation_log(conn, key_id=None, before=before, limit=50)
            assert [r["id"] for r in rest["data"]] == [f"gen-{i:08d}" for i in range(39, -1, -1)]
            assert rest["next_before"] is None

            # A filter looks back 30 days from the newest generation, then pages on by window.
            rare = queries.generation_log(conn, key_id=None, model="a/rare")
            assert [r["id"] for r in rare["data"]] == ["gen-00000080"] and rare["next_before"] is not None
            older = datetime.fromisoformat(rare["next_before"].removesuffix("Z"))
            assert older == START + timedelta(days=89) - queries.FILTER_WINDOW
            pages = []
            while older is not None:
                page = queries.generation_log(conn, key_id=None, model="a/rare", before=older)
                pages.extend(r["id"] for r in page["data"])
                older = datetime.fromisoformat(page["next_before"].removesuffix("Z")) if page["next_before"] else None
            assert pages == ["gen-00000003"]
            assert [r["key_id"] for r in queries.generation_log(conn, key_id="k1", model="a/rare")["data"]] == []

            tasks = queries.largest_tasks(conn, key_id="k0", start=date(2026, 1, 1), end=date(2026, 12, 31), top=3)
            # A task belongs to the key of its earliest record: task-j starts at day j, key k(j % 2).
            assert tasks["tasks"] == 3
            assert [t["session_id"] for t in tasks["largest"]] == ["task-4", "task-2", "task-0"]
