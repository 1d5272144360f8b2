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
            assert queries.first_day(conn, key_id="k1") == (START + timedelta(days=1)).date()
            assert queries.latest_day(conn, key_id=None) == (START + timedelta(days=89)).date()
            everyone = queries.activity_series(conn, key_id=None, start=START.date(), end=START.date() + timedelta(4))
            assert [d["requests"] for d in everyone["days"]] == [1] * 5
            assert [d["prompt_tokens"] for d in everyone["days"]] == [100, 101, 102, 103, 104]
            assert queries.activity_series(conn, key_id="k9", start=START.date(), end=START.date())["totals"][
                "requests"] == 0

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


def test_filtered_log_reads_only_where_the_rollups_point_and_pages_as_a_scan_would(db_url: str) -> None:
    # 45 days, three records a day at varying hours, three keys, three models (one rare, one
    # that key k2 never runs), tasks that span a few hours or several days.
    records = []
    for i in range(135):
        day, slot = divmod(i, 3)
        at = START + timedelta(days=day, hours=5 * slot + day % 4, minutes=i % 7)
        model = "a/rare" if i % 17 == 0 else ("c/never-k2" if i % 3 == 1 else "b/common")
        key = "k2" if model == "b/common" and i % 2 else f"k{i % 2}"
        records.append(record(i, at, model, key_id=key, session_id=f"task-{i // 10}" if i % 4 else "long",
                              prompt_tokens=10, completion_tokens=1))

    def scan(key: str | None, model: str | None, task: str | None, before: datetime | None,
             limit: int) -> tuple[list[str], str | None]:
        """The page a plain scan of the window gives (the function's documented answer)."""
        scope = [r for r in records if key is None or r.key_id == key]
        rows = [r for r in scope if (model is None or r.model == model) and (task is None or r.session_id == task)
                and (before is None or r.created_at < before)]
        window = None
        if model or task:
            window = (before or max(r.created_at for r in scope)) - queries.FILTER_WINDOW
            rows = [r for r in rows if r.created_at >= window]
        rows.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        page = rows[:limit]
        after = page[-1].created_at.isoformat() + "Z" if len(page) == limit else None
        if after is None and window is not None and any(r.created_at < window for r in scope):
            after = window.isoformat() + "Z"
        return [r.id for r in page], after

    with ledger(db_url) as engine:
        write(engine, records, batch_size=50)
        with engine.connect() as conn:
            checked = 0
            for key in (None, "k0", "k2"):
                for model in (None, "a/rare", "b/common", "c/never-k2"):
                    for task in (None, "long", "task-3", "task-12", "missing"):
                        for before in (None, START + timedelta(days=40, hours=7), START + timedelta(days=20)):
                            for limit in (1, 4, 50):
                                got = queries.generation_log(conn, key_id=key, model=model, session_id=task,
                                                             before=before, limit=limit)
                                want = scan(key, model, task, before, limit)
                                assert ([r["id"] for r in got["data"]], got["next_before"]) == want, \
                                    (key, model, task, before, limit)
                                checked += bool(want[0])
            assert checked > 200  # of 540 combinations; the rest check empty pages
