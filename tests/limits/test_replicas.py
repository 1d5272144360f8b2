"""Two ``tollway serve`` replicas on one PostgreSQL ledger (and one Redis, or none) act as
one gateway: a key's credit limit, RPM and TPM hold across both."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest
import redis

from tests.limits.support import (
    MODEL,
    SYSTEM_REDIS,
    MeteredStub,
    Replica,
    ledger_totals,
    raw_config,
    replicas,
    request_cost_nano,
    require_redis,
)
from tests.support.servers import aiohttp_server, new_key, postgres_database
from tollway.limits.capping import prompt_bound

BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 5,
                        "messages": [{"role": "user", "content": "how much is the fish?"}]}


def _client(replica: Replica, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=replica.url + "/v1", max_retries=0, timeout=60)


async def _one(client: openai.AsyncOpenAI, stream: bool) -> str:
    """``ok``, or the refusal's HTTP status and error type."""
    try:
        if stream:
            chunks = await client.chat.completions.create(**BODY, stream=True)
            usage = None
            async for chunk in chunks:
                usage = chunk.usage or usage
            assert usage is not None and usage.completion_tokens == BODY["max_tokens"]
        else:
            done = await client.chat.completions.create(**BODY)
            assert done.usage is not None and done.usage.completion_tokens == BODY["max_tokens"]
        return "ok"
    except openai.APIStatusError as exc:
        return f"{exc.status_code} {exc.body.get('type') if isinstance(exc.body, dict) else exc.body}"


def _backend(name: str) -> str | None:
    return require_redis() if name == "redis" else None


@pytest.mark.parametrize("backend", ["redis", "database"])
async def test_200_concurrent_requests_never_spend_past_the_limit(backend: str, tmp_path: Path) -> None:
    cost = request_cost_nano(BODY)
    stub = MeteredStub()
    stub.behaviour.chunk_delay_s = 0.01  # streams overlap with everything else
    with postgres_database() as db, aiohttp_server(stub.app()) as upstream:
        key_id, key = new_key(db, limit_nanousd=50 * cost)
        with replicas(raw_config(db, upstream, redis_url=_backend(backend)), tmp_path) as reps:
            clients = [_client(r, key) for r in reps]
            outcomes = await asyncio.gather(*(_one(clients[i % 2], stream=i % 3 == 0) for i in range(200)))
            for c in clients:
                await c.close()
        # Both replicas were stopped with SIGTERM: every answered generation is in the ledger.
        spent, usage, succeeded = ledger_totals(db, key_id)
    counts = Counter(outcomes)
    # Each generation costs exactly its reservation, so exactly 50 fit and none more.
    assert counts["ok"] == 50, counts
    assert counts["402 insufficient_credits"] == 150, counts
    assert spent == usage == 50 * cost
    assert succeeded == 50
    if backend == "redis":
        r = redis.Redis.from_url(SYSTEM_REDIS)
        assert int(r.get(f"tw:{{{key_id}}}:spend:all") or -1) == spent
        assert int(r.get(f"tw:{{{key_id}}}:resv:total") or 0) == 0  # every reservation settled
        r.close()


async def _sequence(reps: list[Replica], key: str, n: int) -> list[tuple[int, str | None]]:
    """``n`` requests one after another, alternating replicas: (status, Retry-After)."""
    out: list[tuple[int, str | None]] = []
    clients = [_client(r, key) for r in reps]
    for i in range(n):
        try:
            await clients[i % 2].chat.completions.create(**BODY)
            out.append((200, None))
        except openai.APIStatusError as exc:
            out.append((exc.status_code, exc.response.headers.get("retry-after")))
    for c in clients:
        await c.close()
    return out


@pytest.mark.parametrize("backend", ["redis", "database"])
async def test_rpm_and_tpm_hold_across_replicas(backend: str, tmp_path: Path) -> None:
    tokens = prompt_bound(BODY) + BODY["max_tokens"]
    with postgres_database() as db, aiohttp_server(MeteredStub().app()) as upstream:
        rpm_id, rpm_key = new_key(db, name="rpm", rpm=7)
        tpm_id, tpm_key = new_key(db, name="tpm", tpm=5 * tokens + tokens // 2)
        with replicas(raw_config(db, upstream, redis_url=_backend(backend)), tmp_path) as reps:
            by_rpm = await _sequence(reps, rpm_key, 12)
            by_tpm = await _sequence(reps, tpm_key, 9)
        assert ledger_totals(db, rpm_id)[2] == 7
        assert ledger_totals(db, tpm_id)[2] == 5
    assert [s for s, _ in by_rpm] == [200] * 7 + [429] * 5
    assert [s for s, _ in by_tpm] == [200] * 5 + [429] * 4
    for status, retry_after in by_rpm + by_tpm:
        if status == 429:
            assert retry_after is not None and 1 <= int(retry_after) <= 60
