"""The ledger writer under faults: poison records, an unreachable database, a restart.

Poison records and journal replays run on both ledgers; the outage tests revoke
connections to a PostgreSQL database of their own (the shared server keeps running).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openai
import psycopg
import pytest
from sqlalchemy import Engine, func, select

from tests.support.servers import PG_ADMIN_URL, gateway_server, make_settings, new_key, postgres_database
from tests.support.stub_openai import StubOpenAI
from tollway.ledger import schema
from tollway.ledger.db import create_db_engine, migrate
from tollway.ledger.dead_letters import dead_letters
from tollway.ledger.journal import Journal
from tollway.ledger.records import GenerationRecord
from tollway.ledger.rollups import apply_rollups, usage_daily_model
from tollway.ledger.writer import LedgerWriter


def _record(gen_id: str, key_id: str, **fields: Any) -> GenerationRecord:
    values: dict[str, Any] = {"model": "test/echo", "provider": "stub", "prompt_tokens": 10,
                              "completion_tokens": 5, "cost_nanousd": 1000, "session_id": "task-1"}
    values.update(fields)
    return GenerationRecord(id=gen_id, key_id=key_id, created_at=datetime(2026, 5, 4, 12, 30), **values)


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    engine = create_db_engine(database)
    migrate(engine)
    yield engine
    engine.dispose()


def _ledger(engine: Engine, key_id: str) -> tuple[set[str], int, int, int]:
    """(generation ids, key spend, requests in the rollups, cost in the rollups)."""
    with engine.connect() as conn:
        ids = set(conn.execute(select(schema.generations.c.id)).scalars())
        spend = conn.execute(select(schema.keys.c.usage_nanousd).where(schema.keys.c.id == key_id)).scalar_one()
        requests, cost = conn.execute(select(func.coalesce(func.sum(usage_daily_model.c.requests), 0),
                                             func.coalesce(func.sum(usage_daily_model.c.cost_nanousd), 0))).one()
    return ids, int(spend), int(requests), int(cost)


@pytest.mark.parametrize("set_based", [False, True], ids=["row-by-row", "set-based"])
def test_poison_records_are_dead_lettered_while_batch_mates_commit(database: str, engine: Engine,
                                                                  set_based: bool, tmp_path: Path) -> None:
    key_id, _ = new_key(database)
    good = [_record(f"gen-ok-{i}", key_id, cost_nanousd=1000 + i) for i in range(10)]
    # Injected past the bounds: values the database (or its driver) refuses.
    poison = [_record("gen-poison-int", key_id, prompt_tokens=2**64),
              _record("gen-poison-surrogate", key_id, upstream_id="half\ud800pair")]
    if engine.dialect.name == "postgresql":
        poison += [_record("gen-poison-nul", key_id, session_id="a\x00b"),
                   _record("gen-poison-long", key_id, finish_reason="f" * 60)]
    batch = good[:4] + poison[:1] + good[4:8] + poison[1:] + good[8:]
    writer = LedgerWriter(engine, hooks=[apply_rollups], set_based=set_based, journal=Journal(tmp_path / "j"))
    for record in batch:
        writer.submit(record)
    writer.flush()  # no thread: the whole batch is written here, as one

    ids, spend, requests, cost = _ledger(engine, key_id)
    assert ids == {r.id for r in good}
    assert spend == cost == sum(r.cost_nanousd for r in good)
    assert requests == len(good)
    with engine.connect() as conn:
        kept = {row.generation_id: row for row in conn.execute(select(dead_letters))}
    assert set(kept) == {r.id for r in poison}
    for record in poison:
        assert kept[record.id].error  # the driver's reason
        assert record.id in kept[record.id].record  # the whole record, to fix and re-import
    health = writer.health()
    assert health.dead_letters == len(poison) and health.lost == 0 and health.written == len(good)


def test_journal_replay_counts_each_generation_once(database: str, engine: Engine, tmp_path: Path) -> None:
    key_id, _ = new_key(database)
    records = [_record(f"gen-{i}", key_id, cost_nanousd=100 * (i + 1)) for i in range(6)]
    first = LedgerWriter(engine, hooks=[apply_rollups])
    for record in records[:3]:
        first.submit(record)
    first.flush()
    # The journal holds all six, as after a batch whose commit succeeded but whose
    # acknowledgement was lost; a SIGKILL tore the line it was writing last.
    journal = Journal(tmp_path / "j")
    journal.append(records)
    journal.close()
    (segment,) = (tmp_path / "j").iterdir()
    with open(segment, "ab") as handle:
        handle.write(b'{"id": "gen-torn", "key_id"')

    second = LedgerWriter(engine, hooks=[apply_rollups], journal=Journal(tmp_path / "j"))
    second.start()
    assert second.flush(30)
    second.close()
    ids, spend, requests, cost = _ledger(engine, key_id)
    assert ids == {r.id for r in records}
    assert spend == cost == sum(r.cost_nanousd for r in records)
    assert requests == len(records)
    assert list((tmp_path / "j").iterdir()) == []


# -- PostgreSQL unreachable ------------------------------------------------------------------


def _allow_connections(database: str, allowed: bool) -> None:
    """Revoke (and cut) or restore connections to one test database."""
    name = database.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allowed else "false"}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))


@contextmanager
def _outage(database: str) -> Iterator[None]:
    _allow_connections(database, False)
    try:
        yield
    finally:
        _allow_connections(database, True)


def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


@pytest.fixture
def pg_stub(stub: tuple[StubOpenAI, str]) -> Iterator[tuple[str, StubOpenAI, str]]:
    upstream, upstream_url = stub
    with postgres_database() as database:
        yield database, upstream, upstream_url


def _settings(database: str, upstream_url: str, journal_dir: Path, on_failure: str = "refuse") -> Any:
    # Keys stay cached through the outage (key lookups during an outage are another issue's).
    return make_settings(database, upstream_url, extra={
        "server": {"key_cache_ttl_s": 3600},
        "ledger": {"flush_interval_ms": 5, "journal_dir": str(journal_dir), "on_failure": on_failure}})


def _chat(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="test/echo", messages=[{"role": "user", "content": "hi"}])


def _journaled_lines(directory: Path, prefix: str = "") -> int:
    """Records in journal files (``prefix`` "segment-": the outage journal's only)."""
    if not directory.exists():
        return 0
    return sum(len(p.read_bytes().splitlines()) for p in directory.iterdir() if p.name.startswith(prefix))


def test_postgres_outage_journals_records_and_replays_them_exactly_once(
        pg_stub: tuple[str, StubOpenAI, str], tmp_path: Path) -> None:
    database, upstream, upstream_url = pg_stub
    key_id, key = new_key(database)
    with gateway_server(_settings(database, upstream_url, tmp_path / "j")) as (url, app):
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        answered = [_chat(client).id for _ in range(2)]
        writer = app.state.gateway.writer
        assert writer.flush(10)
        with _outage(database):
            answered += [_chat(client).id for _ in range(5)]
            _eventually(lambda: writer.health().journal_depth == 5, "5 records journaled")
            assert _journaled_lines(tmp_path / "j", "segment-") == 5
            health = httpx.get(url + "/health")
            assert health.status_code == 200
            assert health.json()["status"] == "degraded"
            ledger = health.json()["ledger"]
            assert ledger["database_reachable"] is False and ledger["journal_depth"] == 5
            assert ledger["last_error"]
            assert "tollway_ledger_journal_depth 5.0" in httpx.get(url + "/metrics").text
        assert writer.flush(60)
        ids, spend, requests, cost = _ledger(app.state.gateway.engine, key_id)
        assert httpx.get(url + "/health").json()["status"] == "ok"
    assert ids == set(answered) and len(upstream.requests) == len(answered)
    assert requests == len(answered) and spend == cost > 0
    assert _journaled_lines(tmp_path / "j") == 0


def test_records_journaled_at_shutdown_arrive_at_the_next_start(
        pg_stub: tuple[str, StubOpenAI, str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    database, upstream, upstream_url = pg_stub
    key_id, key = new_key(database)
    settings = _settings(database, upstream_url, tmp_path / "j")
    with gateway_server(settings) as (url, app):
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        answered = [_chat(client).id]
        assert app.state.gateway.writer.flush(10)
        _allow_connections(database, False)
        try:
            answered += [_chat(client).id for _ in range(3)]
            caplog.set_level(logging.WARNING, logger="tollway.ledger")
        except BaseException:
            _allow_connections(database, True)
            raise
    # The server stopped (SIGTERM's path) while the database was unreachable.
    try:
        assert _journaled_lines(tmp_path / "j") == 3
        assert any("kept in the journal" in r.getMessage() for r in caplog.records)
    finally:
        _allow_connections(database, True)
    with gateway_server(settings) as (url, app):
        assert app.state.gateway.writer.flush(30)
        ids, spend, requests, cost = _ledger(app.state.gateway.engine, key_id)
    assert ids == set(answered) and len(upstream.requests) == 4
    assert requests == 4 and spend == cost > 0
    assert _journaled_lines(tmp_path / "j") == 0


@pytest.mark.parametrize("on_failure", ["refuse", "serve"])
def test_when_nothing_can_meter_on_failure_decides(pg_stub: tuple[str, StubOpenAI, str], tmp_path: Path,
                                                    on_failure: str) -> None:
    database, upstream, upstream_url = pg_stub
    key_id, key = new_key(database)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("the journal can't be created under a file")
    with gateway_server(_settings(database, upstream_url, blocker / "journal", on_failure)) as (url, app):
        client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
        answered = [_chat(client).id]
        writer = app.state.gateway.writer
        assert writer.flush(10)
        with _outage(database):
            answered.append(_chat(client).id)  # answered; the writer finds the database gone
            _eventually(lambda: not writer.metering_possible(), "metering impossible")
            health = httpx.get(url + "/health")
            assert health.status_code == 503 and health.json()["status"] == "unhealthy"
            if on_failure == "refuse":
                with pytest.raises(openai.APIStatusError) as refused:
                    _chat(client)
                assert refused.value.status_code == 503
                error = refused.value.body
                assert isinstance(error, dict) and "ledger" in error["message"]
                assert error["type"] == "service_unavailable"
            else:
                answered.append(_chat(client).id)
        _eventually(writer.metering_possible, "metering possible again")
        answered.append(_chat(client).id)
        assert writer.flush(30)
        ids, spend, requests, cost = _ledger(app.state.gateway.engine, key_id)
    # Held in memory while there was nowhere else to put them, none lost.
    assert ids == set(answered) and len(upstream.requests) == len(answered)
    assert requests == len(answered) and spend == cost > 0


class _Crash(BaseException):
    """Not an Exception: what the writer's own guard does not catch (a bug, an interpreter signal)."""


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_writer_thread_makes_metering_impossible(engine: Engine, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    writer = LedgerWriter(engine, hooks=[apply_rollups], journal=Journal(tmp_path / "j"))
    assert writer.metering_possible()

    def crash() -> tuple[list[GenerationRecord], bool]:
        raise _Crash

    monkeypatch.setattr(writer, "_collect", crash)
    writer.start()
    _eventually(lambda: not writer.health().alive, "the writer thread died")
    assert not writer.metering_possible()
    assert not writer.health().metering_possible


def test_write_ahead_keeps_what_a_kill_would_lose(database: str, engine: Engine, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    key_id, _ = new_key(database)
    records = [_record(f"gen-{i}", key_id, cost_nanousd=10 * (i + 1)) for i in range(40)]
    killed = LedgerWriter(engine, hooks=[apply_rollups], journal=Journal(tmp_path / "j"), write_ahead=True)
    never = threading.Event()
    monkeypatch.setattr(killed, "_deliver", lambda batch: never.wait())  # killed before any commit
    killed.start()
    for record in records:
        killed.submit(record)
    _eventually(lambda: _journaled_lines(tmp_path / "j", "ahead-") == len(records), "all records fsync'd")
    # SIGKILL: nothing runs any more, and the process's file handles (and their locks) close.
    ahead = killed._ahead
    assert ahead is not None and ahead._file is not None
    ahead.stop(10)  # (its thread idle, not inside an fsync that would hold the file a moment longer)
    ahead._file.close()

    restarted = LedgerWriter(engine, hooks=[apply_rollups], journal=Journal(tmp_path / "j"), write_ahead=True)
    restarted.start()
    assert restarted.flush(30)
    restarted.close()
    never.set()
    ids, spend, requests, cost = _ledger(engine, key_id)
    assert ids == {r.id for r in records}
    assert spend == cost == sum(r.cost_nanousd for r in records)
    assert requests == len(records)
    assert _journaled_lines(tmp_path / "j") == 0


def test_write_ahead_segments_are_deleted_once_written_even_with_a_repeated_id(
        database: str, engine: Engine, tmp_path: Path) -> None:
    key_id, _ = new_key(database)
    records = [_record(f"gen-{i}", key_id) for i in range(5)] + [_record("gen-0", key_id)]
    writer = LedgerWriter(engine, hooks=[apply_rollups], journal=Journal(tmp_path / "j"), write_ahead=True)
    writer.start()
    for record in records:
        writer.submit(record)
    assert writer.flush(30)
    assert _journaled_lines(tmp_path / "j", "ahead-") == len(records)  # the open segment, fsync'd
    writer.close()
    assert not (tmp_path / "j").exists()  # every record acknowledged: segment and directory gone
    ids, _, requests, _ = _ledger(engine, key_id)
    assert ids == {f"gen-{i}" for i in range(5)} and requests == 5
