"""The set-based bulk path leaves exactly the tables the live writer leaves, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.analytics.helpers import ledger, postgres_database, record
from tollway.ledger import schema
from tollway.ledger.detail import DETAIL_TABLES
from tollway.ledger.keys import create_key
from tollway.ledger.records import GenerationRecord
from tollway.ledger.rollups import ROLLUP_TABLES, apply_rollups
from tollway.ledger.writer import LedgerWriter

T0 = datetime(2026, 1, 24, 22, 59, 58, 123456)  # a Saturday: weeks and a month boundary are crossed
TABLES = (schema.generations, *ROLLUP_TABLES, *DETAIL_TABLES)


@pytest.fixture(params=["sqlite", "postgresql"])
def two_dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty ledgers of the same kind: one for the live writer, one for the bulk path."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'live.db'}", f"sqlite:///{tmp_path / 'bulk.db'}"
    else:
        with postgres_database() as live, postgres_database() as bulk:
            yield live, bulk


def _records(n: int = 700, seed: int = 11) -> list[GenerationRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = rng.choice([0, 3, 7, 8, 900, 12_000, 180_000])
        cached = rng.randint(0, prompt)
        completion = rng.randint(0, 4000)
        # Microseconds sometimes 0: SQLite must still store the ".000000" SQLAlchemy writes.
        at = T0 + timedelta(seconds=rng.randint(0, 12 * 86400), microseconds=rng.choice([0, rng.randint(1, 999_999)]))
        out.append(record(
            i, at, rng.choice(["a/x", "b/y", "c/z"]),
            provider=rng.choice(["p1", "p2", None]), app=rng.choice(["https://app.one", "", None]),
            app_title=rng.choice(["Title", "", None]), key_id=rng.choice(["k1", "k2", "k-unknown", None]),
            session_id=rng.choice([f"s{rng.randint(0, 30)}", "", None]), prompt_tokens=prompt,
            completion_tokens=completion, cached_tokens=cached, reasoning_tokens=completion // 3,
            cache_write_tokens=rng.randint(0, prompt - cached), cost_nanousd=rng.randint(0, 10**9),
            status=rng.choice(["success"] * 8 + ["error", "cancelled"]), streamed=rng.random() < 0.5,
            attempts=rng.choice([None, [{"provider": "p1", "status": 502}]]), extra=rng.choice([None, {"x": 1}]),
            # The analytics cubes' dimensions and timings (tollway.ledger.detail).
            latency_ms=rng.choice([None, 0, rng.randint(1, 90_000)]), ttft_ms=rng.choice([None, rng.randint(0, 5000)]),
            finish_reason=rng.choice([None, "stop", "length"]), api=rng.choice(["chat", "messages", None])))
    rng.shuffle(out)  # the gateway submits in completion order, not id or time order
    return out


@contextmanager
def _ledger_with_keys(url: str) -> Iterator[Engine]:
    with ledger(url) as engine:
        with engine.begin() as conn:
            for kid in ("k1", "k2"):
                key, _plain = create_key(conn, name=kid)
                conn.execute(schema.keys.update().where(schema.keys.c.id == key.id).values(id=kid))
        yield engine


def _dump(engine: Engine) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        for table in TABLES:
            out[table.name] = sorted(tuple(row) for row in conn.execute(select(table)))
        out["keys"] = sorted(conn.execute(select(schema.keys.c.id, schema.keys.c.usage_nanousd)).all())
    return out


def write(engine: Engine, records: list[GenerationRecord], batch_size: int, **kwargs: Any) -> None:
    """Through the live writer, in batches; row by row (Python rollups) unless told otherwise."""
    writer = LedgerWriter(engine, batch_size=batch_size, hooks=kwargs.pop("hooks", [apply_rollups]),
                          set_based=kwargs.pop("set_based", False))
    for i in range(0, len(records), batch_size):
        for r in records[i:i + batch_size]:
            writer.submit(r)
        writer.flush()
    writer.close()


def _bulk(engine: Engine, records: list[GenerationRecord], batch_size: int, *hooks: Any) -> int:
    writer = LedgerWriter(engine, hooks=[apply_rollups, *hooks])
    return writer.write_bulk(records, batch_size=batch_size)


def test_bulk_tables_equal_the_row_by_row_writers(two_dbs: tuple[str, str]) -> None:
    records = _records()
    live_url, bulk_url = two_dbs
    with _ledger_with_keys(live_url) as live, _ledger_with_keys(bulk_url) as bulk:
        write(live, records, batch_size=50)
        assert _bulk(bulk, records, batch_size=170) == len(records)  # the last batch is smaller
        expected, got = _dump(live), _dump(bulk)
    assert len(expected["generations"]) == len(records)
    assert all(expected[t.name] for t in TABLES)  # every table has rows, so the comparison means something
    assert dict(expected["keys"])["k1"] > 0
    for name in expected:
        assert got[name] == expected[name], name


def test_a_retried_bulk_batch_counts_each_generation_once(two_dbs: tuple[str, str]) -> None:
    records = _records(300)
    live_url, bulk_url = two_dbs
    with _ledger_with_keys(live_url) as live, _ledger_with_keys(bulk_url) as bulk:
        write(live, records, batch_size=40)
        seen: list[str] = []

        def other_hook(_conn: Any, batch: Any) -> None:
            seen.extend(r.id for r in batch)

        # Some ids already in the ledger (an ambiguous commit retried), some new, one repeated
        # within the batch: the bulk path must skip the known ones and still write the rest.
        _bulk(bulk, records[:120], 1000, other_hook)
        _bulk(bulk, records[80:200] + records[150:151] + records[200:], 1000, other_hook)
        expected, got = _dump(live), _dump(bulk)
    for name in expected:
        assert got[name] == expected[name], name
    # Other hooks see each generation once, as the row-by-row path's retry shows them.
    assert sorted(seen) == sorted(r.id for r in records)


def test_live_writer_set_based_equals_row_by_row(two_dbs: tuple[str, str]) -> None:
    records = _records(500, seed=5)
    row_url, set_url = two_dbs
    with _ledger_with_keys(row_url) as by_row, _ledger_with_keys(set_url) as by_set:
        write(by_row, records, batch_size=60)
        write(by_set, records, batch_size=60, set_based=True)
        write(by_row, records[100:130], batch_size=60)  # a retried batch: counted once either way
        write(by_set, records[100:130], batch_size=60, set_based=True)
        expected, got = _dump(by_row), _dump(by_set)
    for name in expected:
        assert got[name] == expected[name], name


def test_live_and_bulk_writes_add_up(two_dbs: tuple[str, str]) -> None:
    records = _records(400, seed=3)
    live_url, mixed_url = two_dbs
    with _ledger_with_keys(live_url) as live, _ledger_with_keys(mixed_url) as mixed:
        write(live, records, batch_size=64)
        write(mixed, records[:150], batch_size=64)  # rollup rows from the row-by-row path ...
        _bulk(mixed, records[150:], batch_size=97)  # ... are added to, never replaced
        expected, got = _dump(live), _dump(mixed)
    for name in expected:
        assert got[name] == expected[name], name


def _sparse(records: list[GenerationRecord]) -> list[GenerationRecord]:
    """The same records, but in the first half every optional column is NULL in every row.

    The SQLite bulk path leaves a batch's all-NULL columns out of its staging insert; the
    second half (filled columns, ``True`` flags) checks nothing leaks from one batch to the next.
    """
    out = []
    for i, r in enumerate(records):
        if i < len(records) // 2:
            out.append(GenerationRecord(id=r.id, key_id=None, created_at=r.created_at, model=r.model,
                                        provider=None, app=None, session_id=None, http_status=None, api=None,
                                        prompt_tokens=r.prompt_tokens, cost_nanousd=r.cost_nanousd))
        else:
            out.append(GenerationRecord(
                **{**{f: getattr(r, f) for f in r.__slots__},
                   "upstream_model": "up/m", "upstream_id": f"u{i}", "finish_reason": "stop",
                   "latency_ms": i, "ttft_ms": i // 2, "error": None if i % 3 else "boom",
                   "cancelled": i % 2 == 0, "estimated": True, "streamed": True}))
    return out


def test_bulk_batches_with_all_null_columns_equal_the_live_writer(two_dbs: tuple[str, str]) -> None:
    records = _sparse(sorted(_records(400, seed=8), key=lambda r: r.id))
    live_url, bulk_url = two_dbs
    with _ledger_with_keys(live_url) as live, _ledger_with_keys(bulk_url) as bulk:
        write(live, records, batch_size=50)
        assert _bulk(bulk, records, batch_size=100) == len(records)  # batches 1-2 sparse, 3-4 full
        expected, got = _dump(live), _dump(bulk)
    rows = expected["generations"]
    assert {r[schema.generations.c.keys().index("upstream_model")] for r in rows} == {None, "up/m"}
    assert {r[schema.generations.c.keys().index("estimated")] for r in rows} == {False, True}
    for name in expected:
        assert got[name] == expected[name], name


def test_each_bulk_batch_commits_on_its_own(two_dbs: tuple[str, str]) -> None:
    """The next batch is read on a helper thread: its failure reaches the caller, and the
    batches before it stay committed (and a re-run of the whole import writes only the rest)."""
    records = _records(300, seed=2)
    live_url, bulk_url = two_dbs

    def failing() -> Iterator[GenerationRecord]:
        yield from records[:250]
        raise RuntimeError("source broke")

    with _ledger_with_keys(live_url) as live, _ledger_with_keys(bulk_url) as bulk:
        write(live, records, batch_size=50)
        with pytest.raises(RuntimeError, match="source broke"):
            _bulk_iter(bulk, failing(), batch_size=100)
        with bulk.connect() as conn:
            ids = set(conn.execute(select(schema.generations.c.id)).scalars())
        assert ids == {r.id for r in records[:200]}  # two whole batches; the third never started
        _bulk(bulk, records, batch_size=100)  # the import re-run from the start
        expected, got = _dump(live), _dump(bulk)
    for name in expected:
        assert got[name] == expected[name], name


def _bulk_iter(engine: Engine, records: Iterator[GenerationRecord], batch_size: int) -> int:
    return LedgerWriter(engine, hooks=[apply_rollups]).write_bulk(records, batch_size=batch_size)


def test_bulk_load_restores_sqlite_durability(tmp_path: Path) -> None:
    """write_bulk leaves SQLite's durability and cache settings as they were."""
    with _ledger_with_keys(f"sqlite:///{tmp_path / 'l.db'}") as engine:
        _bulk(engine, _records(120), batch_size=50)
        # The pool's two connections: the one write_bulk loaded through (it holds the TEMP
        # staging table) and the checkpointer's.
        with engine.connect() as a, engine.connect() as b:
            loaded = [c for c in (a, b) if c.exec_driver_sql(
                "SELECT count(*) FROM temp.sqlite_master WHERE name = 'tollway_stage'").scalar()]
            assert len(loaded) == 1
            assert loaded[0].exec_driver_sql("PRAGMA temp.cache_size").scalar() == -2000
            for conn in (a, b):
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL, from db.py
                assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -2000
                assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000  # SQLite's default


def test_sqlite_bulk_load_checkpoints_beside_the_writer(tmp_path: Path) -> None:
    """During a load the writer's connection never checkpoints (wal_autocheckpoint 0); the
    checkpointer's connection copies the WAL into the database file, to the last commit."""
    path = tmp_path / "l.db"
    seen: list[int] = []

    def autocheckpoint(conn: Any, _batch: Any) -> None:
        seen.append(conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar())

    with _ledger_with_keys(f"sqlite:///{path}") as engine:
        before = path.stat().st_size
        _bulk(engine, _records(3000, seed=9), 100, autocheckpoint)
        after = path.stat().st_size  # the database file itself, not its -wal
        wal = Path(f"{path}-wal").stat().st_size
    assert seen == [0] * 30
    # Three thousand generations with their rollups are over a megabyte; without a
    # checkpoint they would all still sit in the WAL and the file would not have grown.
    assert after - before > 1_000_000, (before, after, wal)



def test_parallel_postgresql_batches_equal_one_at_a_time(caplog: pytest.LogCaptureFixture) -> None:
    """Batches written by several PostgreSQL connections at once leave the tables one writer
    leaves: every batch counted once, rollup rows shared by batches (same hour, day, task,
    key) summed, each task's key that of its earliest record whichever batch commits first,
    and no lock wait ends in a deadlock (which the writer would log and retry)."""
    records = _records(900, seed=21)
    with postgres_database() as serial_url, postgres_database() as parallel_url, \
            _ledger_with_keys(serial_url) as serial, _ledger_with_keys(parallel_url) as parallel:
        one = LedgerWriter(serial, hooks=[apply_rollups]).write_bulk(records, batch_size=40, workers=1)
        many = LedgerWriter(parallel, hooks=[apply_rollups]).write_bulk(records, batch_size=40, workers=4)
        expected, got = _dump(serial), _dump(parallel)
    assert one == many == len(records)
    assert len({r.session_id for r in records if r.session_id}) > 20  # tasks span batches
    for name in expected:
        assert got[name] == expected[name], name
    assert not [r for r in caplog.records if r.name == "tollway.ledger" and r.levelno >= logging.ERROR]


def test_concurrent_bulk_loads_on_postgresql_add_up() -> None:
    """Two imports at once (two processes' worth of writers on one ledger) neither deadlock
    nor lose anything: the result equals loading both one after the other."""
    records = _records(800, seed=4)
    first, second = records[::2], records[1::2]
    with postgres_database() as serial_url, postgres_database() as concurrent_url, \
            _ledger_with_keys(serial_url) as serial, _ledger_with_keys(concurrent_url) as concurrent:
        LedgerWriter(serial, hooks=[apply_rollups]).write_bulk(first + second, batch_size=50, workers=1)
        with ThreadPoolExecutor(2) as pool:
            loads = [pool.submit(LedgerWriter(concurrent, hooks=[apply_rollups]).write_bulk, part,
                                 batch_size=50, workers=3) for part in (first, second)]
            assert sum(f.result() for f in loads) == len(records)
        expected, got = _dump(serial), _dump(concurrent)
    for name in expected:
        assert got[name] == expected[name], name
