"""A credit limit is a hard cap: requests that asked a greedy upstream for more than they
reserved (both output fields, ``n``, no cap at all, prompts a local estimate under-counts)
never take a key past its limit, on one gateway or on two replicas sharing Redis and a
PostgreSQL ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from tests.limits.stub_greedy import GreedyStub, greedy_output, greedy_prompt_tokens
from tests.limits.support import (
    MODEL,
    SYSTEM_REDIS,
    gateway,
    ledger_totals,
    raw_config,
    replicas,
    require_redis,
)
from tests.support.servers import aiohttp_server, new_key, postgres_database
from tollway.limits.capping import IMAGE_BOUND, prompt_bound

LIMIT_NANO = 20_000_000  # $0.02: 10,000 output tokens at $2/Mtok
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
TOOLS = [{"type": "function", "function": {"name": f"tool_{i}", "description": "does a thing " * 5,
                                            "parameters": {"type": "object", "properties": {
                                                f"p{j}": {"type": "string"} for j in range(12)}}}}
         for i in range(6)]

# Each hostile body of the issue, as a client sends it.
HOSTILE: dict[str, dict[str, Any]] = {
    "both_output_fields": {"max_completion_tokens": 1, "max_tokens": 2000},
    "n_choices": {"max_tokens": 20, "n": 50},
    "no_output_cap": {},
    "undercounted_prompt": {"max_tokens": 5, "tools": TOOLS, "messages": [
        {"role": "system", "content": "ü" * 300},
        {"role": "user", "content": [{"type": "text", "text": "日本語のテキスト" * 40}, IMAGE, IMAGE]}]},
}


def _body(case: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "tell me everything"}]}
    body.update(HOSTILE[case])
    return body


def _spend_at_greedy_prices(stub: GreedyStub) -> int:
    """What the upstream produced, at the test prices (1 and 2 USD/Mtok: 1000 / 2000 nano a token)."""
    return sum(greedy_prompt_tokens(b) * 1000 + int(b.get("n") or 1) * greedy_output(b) * 2000
               for b in stub.requests)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_body_cannot_spend_past_the_limit(case: str, tmp_path: Path) -> None:
    stub = GreedyStub()
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    with aiohttp_server(stub.app()) as upstream:
        key_id, key = new_key(db, limit_nanousd=LIMIT_NANO)
        statuses: list[int] = []
        with gateway(raw_config(db, upstream, limits={"settlement_journal_dir": str(tmp_path / "j")})) as (url, _):
            for _ in range(40):
                resp = httpx.post(url + "/v1/chat/completions", json=_body(case), timeout=30,
                                  headers={"Authorization": f"Bearer {key}"})
                statuses.append(resp.status_code)
                if resp.status_code == 402:
                    refusal = resp.json()["error"]
                    break
                assert resp.status_code == 200, resp.text
        spent, usage, succeeded = ledger_totals(db, key_id)
    assert statuses[-1] == 402, f"the key never ran out: {statuses}"
    assert refusal["code"] == 402 and refusal["type"] == "insufficient_credits"
    assert "insufficient credit" in refusal["message"]
    if case == "both_output_fields":  # an explicit cap the credit cannot cover: say what fits
        assert "lower max_tokens to at most" in refusal["message"]
    assert succeeded >= 1 and succeeded == statuses.count(200)
    assert spent == usage == _spend_at_greedy_prices(stub), "billed what the upstream produced"
    assert spent <= LIMIT_NANO, f"{case}: spent {spent} nano-USD of a {LIMIT_NANO} limit"
    # The upstream was always told the cap it was reserved for.
    for sent in stub.requests:
        assert sent.get("max_tokens") is not None
        if "max_completion_tokens" in sent:
            assert sent["max_completion_tokens"] <= sent["max_tokens"]
    if case == "no_output_cap":
        assert stub.requests[0]["max_tokens"] == 4096  # limits.default_max_output_tokens
        # The last admitted request was capped at what the remaining credit covered.
        assert stub.requests[-1]["max_tokens"] < 4096


def test_the_prompt_bound_holds_for_the_stub_tokenizers() -> None:
    """The documented bound is never below what the greedy stub (one token per byte, template
    and image and tool overheads) or the default stub (a quarter of the JSON body) counts."""
    for case in HOSTILE:
        body = _body(case)
        assert prompt_bound(body) >= greedy_prompt_tokens(body), case
        assert prompt_bound(body) >= len(httpx.Request("POST", "http://x", json=body).content) // 4, case
    # The JSON an upstream receives for a tiny prompt, long model name and options included.
    tiny = {"model": "some-vendor/a-rather-long-upstream-model-name-2026-01-01", "stream": True,
            "stream_options": {"include_usage": True}, "max_tokens": 4096,
            "messages": [{"role": "user", "content": "hi"}]}
    assert prompt_bound(tiny) >= len(httpx.Request("POST", "http://x", json=tiny).content) // 4
    image_only = {"messages": [{"role": "user", "content": [IMAGE]}]}
    assert prompt_bound(image_only) >= IMAGE_BOUND > greedy_prompt_tokens(image_only)


def test_a_key_with_credit_for_no_output_at_all_gets_402(tmp_path: Path) -> None:
    stub = GreedyStub()
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    with aiohttp_server(stub.app()) as upstream:
        _, key = new_key(db, limit_nanousd=1000)  # less than the prompt alone
        with gateway(raw_config(db, upstream)) as (url, _):
            resp = httpx.post(url + "/v1/chat/completions", json=_body("no_output_cap"), timeout=30,
                              headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 402
    assert resp.json()["error"]["type"] == "insufficient_credits"
    assert "shorten the prompt" in resp.json()["error"]["message"]
    assert stub.requests == []


async def _hostile(client: openai.AsyncOpenAI, i: int) -> int:
    case = list(HOSTILE)[i % len(HOSTILE)]
    body = _body(case)
    try:
        if i % 3 == 0:
            stream = await client.chat.completions.create(**body, stream=True)
            async for _ in stream:
                pass
        else:
            await client.chat.completions.create(**body)
        return 200
    except openai.APIStatusError as exc:
        return exc.status_code


@pytest.mark.parametrize("backend", ["redis", "database"])
async def test_two_replicas_on_one_postgres_ledger_never_pass_the_limit(backend: str, tmp_path: Path) -> None:
    stub = GreedyStub()
    redis_url = require_redis() if backend == "redis" else None
    with postgres_database() as db, aiohttp_server(stub.app()) as upstream:
        key_id, key = new_key(db, limit_nanousd=5 * LIMIT_NANO)
        with replicas(raw_config(db, upstream, redis_url=redis_url), tmp_path) as reps:
            clients = [openai.AsyncOpenAI(api_key=key, base_url=r.url + "/v1", max_retries=0, timeout=60)
                       for r in reps]
            statuses = await asyncio.gather(*(_hostile(clients[i % 2], i) for i in range(120)))
            for c in clients:
                await c.close()
        spent, usage, succeeded = ledger_totals(db, key_id)
    assert set(statuses) <= {200, 402}, statuses
    assert statuses.count(402) > 0 and succeeded == statuses.count(200) > 0
    assert spent == usage == _spend_at_greedy_prices(stub)
    assert spent <= 5 * LIMIT_NANO, f"spent {spent} of {5 * LIMIT_NANO}"
    if backend == "database":
        return
    r = redis.Redis.from_url(SYSTEM_REDIS)
    assert int(r.get(f"tw:{{{key_id}}}:spend:all") or -1) == spent
    assert int(r.get(f"tw:{{{key_id}}}:resv:total") or 0) == 0
    r.close()


def test_anthropic_messages_of_a_limited_key_stay_under_the_limit(tmp_path: Path) -> None:
    stub = GreedyStub()
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    with aiohttp_server(stub.app()) as upstream:
        key_id, key = new_key(db, limit_nanousd=LIMIT_NANO)
        with gateway(raw_config(db, upstream)) as (url, _):
            statuses = []
            for _ in range(20):
                resp = httpx.post(url + "/v1/messages", headers={"x-api-key": key}, timeout=30, json={
                    "model": MODEL, "max_tokens": 3000, "system": "ü" * 200,
                    "messages": [{"role": "user", "content": "write a long story"}]})
                statuses.append(resp.status_code)
                if resp.status_code != 200:
                    break
        spent, _, succeeded = ledger_totals(db, key_id)
    assert statuses[-1] == 402 and resp.json()["type"] == "error"  # Anthropic's error shape
    assert succeeded == statuses.count(200) >= 1
    assert spent == _spend_at_greedy_prices(stub) <= LIMIT_NANO
    assert all(sent["max_tokens"] == 3000 for sent in stub.requests)
