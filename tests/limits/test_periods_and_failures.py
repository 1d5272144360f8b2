"""Reset periods roll over (injectable clock), a lost Redis fails closed and recovers from
the ledger, and a SIGKILLed replica's reservations expire."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.limits.support import (
    MODEL,
    FakeClock,
    MeteredStub,
    gateway,
    ledger_totals,
    raw_config,
    replicas,
    request_cost_nano,
    require_redis,
    start_redis,
)
from tests.support.servers import aiohttp_server, new_key, postgres_database
from tollway.metering import nano_to_usd

BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 7,
                        "messages": [{"role": "user", "content": "what time is it?"}]}


def _post(url: str, key: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"},
                      timeout=30)


def _key_info(url: str, key: str) -> dict[str, Any]:
    resp = httpx.get(url + "/api/v1/key", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()["data"]
    return data


@pytest.mark.parametrize("backend", ["redis", "database"])
def test_daily_limit_rolls_over_at_utc_midnight(backend: str, tmp_path: Path) -> None:
    cost = request_cost_nano(BODY)
    clock = FakeClock(datetime(2026, 3, 1, 23, 59))  # a Sunday: the next minute is a new day and week
    redis_url = require_redis() if backend == "redis" else None
    with postgres_database() as db, aiohttp_server(MeteredStub().app()) as upstream:
        if backend == "database":
            db = f"sqlite:///{tmp_path / 'ledger.db'}"  # the database store on SQLite too
        key_id, key = new_key(db, limit_nanousd=2 * cost, limit_reset="daily")
        with gateway(raw_config(db, upstream, redis_url=redis_url), clock) as (url, gw):
            assert [_post(url, key).status_code for _ in range(3)] == [200, 200, 402]
            refused = _post(url, key)
            assert refused.status_code == 402
            assert "resets 2026-03-02 00:00 UTC" in refused.json()["error"]["message"]
            assert gw.writer.flush(10)
            info = _key_info(url, key)
            assert info["usage_daily"] == nano_to_usd(2 * cost) and info["limit_remaining"] == 0

            clock.now = datetime(2026, 3, 2, 0, 1)
            assert [_post(url, key).status_code for _ in range(3)] == [200, 200, 402]
            assert gw.writer.flush(10)
            info = _key_info(url, key)
        spent, usage, succeeded = ledger_totals(db, key_id)
    assert info["usage_daily"] == info["usage_weekly"] == nano_to_usd(2 * cost)
    assert info["usage_monthly"] == info["usage"] == nano_to_usd(4 * cost)
    assert info["tollway"]["period_usage_nanousd"] == 2 * cost
    assert info["limit"] == nano_to_usd(2 * cost) and info["limit_remaining"] == 0
    assert spent == usage == 4 * cost and succeeded == 4


def test_lost_redis_fails_closed_then_recovers_from_the_ledger(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    cost = request_cost_nano(BODY)
    private = start_redis(tmp_path)
    try:
        with postgres_database() as db, aiohttp_server(MeteredStub().app()) as upstream:
            key_id, key = new_key(db, limit_nanousd=3 * cost)
            _, free_key = new_key(db, name="unlimited")
            raw = raw_config(db, upstream, redis_url=private.url, limits={"redis_timeout_s": 0.5})
            with caplog.at_level(logging.WARNING, logger="tollway.limits"), gateway(raw) as (url, gw):
                assert [_post(url, key).status_code for _ in range(2)] == [200, 200]
                private.proc.kill()
                private.proc.wait(10)
                down = _post(url, key)
                assert down.status_code == 503
                assert "spend store (Redis) is unreachable" in down.json()["error"]["message"]
                assert _post(url, free_key).status_code == 200  # unlimited keys never need Redis
                assert gw.writer.flush(10)
                # A fresh, empty Redis: the counter is re-seeded from the ledger (2 generations).
                private = start_redis(tmp_path, port=private.port)
                assert [_post(url, key).status_code for _ in range(2)] == [200, 402]
            spent, usage, _ = ledger_totals(db, key_id)
    finally:
        private.proc.kill()
        private.proc.wait(10)
    assert spent == usage == 3 * cost
    logged = [r.getMessage() for r in caplog.records if r.name == "tollway.limits"]
    assert any("spend store unreachable" in m for m in logged), logged
    assert any("reachable again" in m for m in logged), logged
    assert not any("sk-" in m for m in logged)


@pytest.mark.parametrize("backend", ["redis", "database"])
async def test_reservations_of_a_killed_replica_expire(backend: str, tmp_path: Path) -> None:
    cost = request_cost_nano(BODY)
    stub = MeteredStub()
    redis_url = require_redis() if backend == "redis" else None
    with postgres_database() as db, aiohttp_server(stub.app()) as upstream:
        key_id, key = new_key(db, limit_nanousd=cost)
        raw = raw_config(db, upstream, redis_url=redis_url, limits={"reservation_ttl_s": 3})
        with replicas(raw, tmp_path) as (doomed, survivor):
            stub.behaviour.hang = True
            async with httpx.AsyncClient(timeout=60) as client:
                pending = asyncio.ensure_future(client.post(
                    doomed.url + "/v1/chat/completions", json=BODY, headers={"Authorization": f"Bearer {key}"}))
                while not stub.requests:  # the doomed replica holds the whole limit now
                    await asyncio.sleep(0.01)
                doomed.proc.send_signal(signal.SIGKILL)
                doomed.proc.wait(10)
                with pytest.raises(httpx.HTTPError):
                    await pending
            stub.behaviour.hang = False
            first = _post(survivor.url, key)
            assert first.status_code == 402  # the orphaned reservation still holds the credit
            deadline = time.monotonic() + 30
            while (resp := _post(survivor.url, key)).status_code == 402:
                assert time.monotonic() < deadline, "the orphaned reservation never expired"
                await asyncio.sleep(0.05)
            assert resp.status_code == 200
            assert _post(survivor.url, key).status_code == 402
        spent, usage, succeeded = ledger_totals(db, key_id)
    assert spent == usage == cost and succeeded == 1
