"""Settlements are never lost: one that cannot reach the spend store is journaled durably,
applied when the store is back (counted once however often it was tried), and replayed by
the next process if this one stops first."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy.exc import OperationalError

from tests.limits.support import (
    MODEL,
    MeteredStub,
    gateway,
    ledger_totals,
    raw_config,
    request_cost_nano,
    require_redis,
    start_redis,
)
from tests.support.servers import aiohttp_server, new_key
from tollway.ledger.db import create_db_engine, migrate
from tollway.limits.db_store import DbLimitStore
from tollway.limits.journal import Settlement, SettlementJournal
from tollway.limits.periods import LIFETIME
from tollway.limits.redis_store import RedisLimitStore
from tollway.limits.store import AdmitRequest, Hold

BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 12,
                        "messages": [{"role": "user", "content": "count slowly"}]}


def _post(url: str, key: str, **extra: Any) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json={**BODY, **extra}, timeout=60,
                      headers={"Authorization": f"Bearer {key}"})


def _journal_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("settlements-*.jsonl")) if directory.is_dir() else 0


def _wait(predicate: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_settlement_survives_redis_stopping_for_seconds(tmp_path: Path) -> None:
    cost = request_cost_nano(BODY)
    server = start_redis(tmp_path)
    journal = tmp_path / "journal"
    stub = MeteredStub()
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    limits = {"redis_timeout_s": 0.2, "settlement_journal_dir": str(journal)}
    spend_key = ""
    try:
        with aiohttp_server(stub.app()) as upstream:
            key_id, key = new_key(db, limit_nanousd=2 * cost + cost // 2)
            spend_key = f"tw:{{{key_id}}}:spend:all"
            r = redis.Redis(port=server.port)
            with gateway(raw_config(db, upstream, redis_url=server.url, limits=limits)) as (url, _):
                assert _post(url, key).status_code == 200
                _wait(lambda: int(r.get(spend_key) or 0) == cost, "the first request was not settled")
                # A slow stream; Redis stops (SIGSTOP) once it has started, for 3.5 s.
                stub.behaviour.chunk_delay_s = 0.05
                result: dict[str, Any] = {}
                worker = threading.Thread(target=lambda: result.update(resp=_post(url, key, stream=True)))
                worker.start()
                _wait(lambda: stub.chunks_sent > 0, "the stream never started")
                os.kill(server.proc.pid, signal.SIGSTOP)
                try:
                    worker.join(30)
                    assert result["resp"].status_code == 200
                    # The settlement could not land: it is on disk, durably, while Redis is down.
                    _wait(lambda: _journal_bytes(journal) > 0, "the settlement was not journaled", timeout=10)
                    time.sleep(max(0.0, 3.5 - 1.0))
                finally:
                    os.kill(server.proc.pid, signal.SIGCONT)
                _wait(lambda: int(r.get(spend_key) or 0) == 2 * cost, "the journaled settlement never landed")
                _wait(lambda: _journal_bytes(journal) == 0, "the journal was not emptied")
                assert int(r.get(f"tw:{{{key_id}}}:resv:total") or 0) == 0
                # The counter holds both generations, so the next one no longer fits.
                refused = _post(url, key)
                assert refused.status_code == 402, refused.text
            assert int(r.get(spend_key) or 0) == 2 * cost, "a settlement was counted twice"
            r.close()
        spent, usage, succeeded = ledger_totals(db, key_id)
        assert (spent, usage, succeeded) == (2 * cost, 2 * cost, 2)
    finally:
        server.proc.kill()
        server.proc.wait()


class _FlakyStore:
    """The database store, unreachable for settlements while ``down`` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = threading.Event()
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def settle(self, hold: Hold, cost_nano: int, tokens: int) -> None:
        if self.down.is_set():
            self.failed += 1
            raise OperationalError("settle", {}, ConnectionRefusedError("database is down"))
        await self.inner.settle(hold, cost_nano, tokens)


def test_a_database_store_settlement_waits_in_the_journal_and_replays_after_restart(tmp_path: Path) -> None:
    cost = request_cost_nano(BODY)
    journal = tmp_path / "journal"
    stub = MeteredStub()
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    raw = raw_config(db, "", limits={"settlement_journal_dir": str(journal)})
    with aiohttp_server(stub.app()) as upstream:
        raw["providers"][0]["base_url"] = upstream + "/v1"
        key_id, key = new_key(db, limit_nanousd=2 * cost + cost // 2)
        with gateway(raw) as (url, gw):
            flaky = _FlakyStore(gw.limits.store)
            gw.limits.store = flaky
            flaky.down.set()
            assert _post(url, key).status_code == 200
            _wait(lambda: _journal_bytes(journal) > 0, "the settlement was not journaled")
            assert flaky.failed >= 3
        # This process stopped before the store came back: the next one owes the settlement.
        assert _journal_bytes(journal) > 0
        with gateway(raw) as (url, gw):
            _wait(lambda: _journal_bytes(journal) == 0, "the journal was not replayed")
            assert _post(url, key).status_code == 200
            # Both settled: the third request would pass the limit.
            assert _post(url, key).status_code == 402
    spent, _, succeeded = ledger_totals(db, key_id)
    assert (spent, succeeded) == (2 * cost, 2)


def _admit_request(key_id: str, limit: int) -> AdmitRequest:
    return AdmitRequest(key_id=key_id, hold_id="h-" + key_id, limit_nano=limit, period=LIFETIME,
                        reserve_nano=500, rpm=None, tpm=None, tokens=0, reservation_ttl_ms=60_000,
                        counter_ttl_s=3600)


@pytest.mark.parametrize("backend", ["redis", "database"])
async def test_settling_the_same_hold_twice_counts_once(backend: str, tmp_path: Path) -> None:
    """A retry whose first answer was lost, or a journal replayed after a crash, is harmless."""
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    key_id, _ = new_key(db, limit_nanousd=10_000)
    engine = create_db_engine(db)
    migrate(engine)
    store: Any = RedisLimitStore(require_redis(), timeout_s=2, max_connections=4) if backend == "redis" \
        else DbLimitStore(engine)
    try:
        req = _admit_request(key_id, 10_000)
        await store.seed(key_id, req.period, 0, 3600)
        assert (await store.admit(req)).outcome == "ok"
        hold = Hold(key_id=key_id, hold_id=req.hold_id, period_id=req.period.id, reserved_nano=500, tokens=None,
                    counter_ttl_s=3600)
        for _ in range(3):
            await store.settle(hold, 300, 10)
        # 10,000 - 300 settled once = 9,700 left: a 9,700 reservation fits, 9,701 does not.
        assert (await store.admit(_replace(req, "h2", 9_701))).outcome == "credits"
        assert (await store.admit(_replace(req, "h3", 9_700))).outcome == "ok"
        await store.settle(_hold(req, "h3"), 0, 0)
        # A reservation that expires before its settlement lands: the late settlement still
        # counts, once.
        late = replace(_replace(req, "h4", 1_000), reservation_ttl_ms=1)
        assert (await store.admit(late)).outcome == "ok"
        await asyncio.sleep(0.05)
        assert (await store.admit(_replace(req, "h5", 9_700))).outcome == "ok"  # h4 expired: freed
        await store.settle(_hold(req, "h5"), 0, 0)
        for _ in range(2):
            await store.settle(_hold(req, "h4"), 1_000, 0)
        assert (await store.admit(_replace(req, "h6", 8_701))).outcome == "credits"
        assert (await store.admit(_replace(req, "h7", 8_700))).outcome == "ok"
    finally:
        await store.close()
        engine.dispose()


def _replace(req: Any, hold_id: str, amount: int) -> Any:
    return replace(req, hold_id=hold_id + req.key_id, reserve_nano=amount)


def _hold(req: Any, hold_id: str) -> Hold:
    return Hold(key_id=req.key_id, hold_id=hold_id + req.key_id, period_id=req.period.id, reserved_nano=1,
                tokens=None, counter_ttl_s=3600)


def test_the_journal_keeps_what_is_owed_and_skips_a_torn_line(tmp_path: Path) -> None:
    def hold(n: int) -> Hold:
        return Hold(key_id="k", hold_id=f"h{n}", period_id="all", reserved_nano=9, tokens=None, counter_ttl_s=60)

    first = SettlementJournal(tmp_path)
    assert first.open() == []
    owed = [Settlement(hold(n), n * 100, n) for n in range(3)]
    for s in owed:
        first.add(s)
    first.done(owed[1])
    # A live process's file is never adopted.
    assert SettlementJournal(tmp_path).open() == []
    first.close()
    (next(tmp_path.glob("settlements-*.jsonl"))).open("ab").write(b'{"hold": {"key_id": "k", "hold_')
    second = SettlementJournal(tmp_path)
    assert second.open() == [owed[0], owed[2]]  # what the first process still owed, in order
    for s in second.pending:
        second.done(s)
    second.close()
    assert list(tmp_path.glob("settlements-*.jsonl")) == []  # nothing owed: no file left
