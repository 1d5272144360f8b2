"""The gateway core end to end: official SDKs -> tollway -> stub OpenAI upstream -> ledger.

Every test here runs on both ledgers (SQLite and PostgreSQL) through the ``running``
fixture.
"""

from __future__ import annotations

import json
import socket
from decimal import Decimal

import openai
import pytest
from openrouter import OpenRouter
from sqlalchemy import select

from tests.conftest import Running
from tollway.ledger import schema


def _rows(r: Running) -> list[dict]:
    r.flush()
    with r.gateway.engine.connect() as conn:
        return [dict(x._mapping) for x in conn.execute(select(schema.generations))]


def _key_usage(r: Running) -> int:
    with r.gateway.engine.connect() as conn:
        return int(conn.execute(select(schema.keys.c.usage_nanousd).where(
            schema.keys.c.id == r.key_id)).scalar_one())


def test_openai_sdk_sync_completion_is_metered(running: Running) -> None:
    client = openai.OpenAI(base_url=running.url + "/v1", api_key=running.key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="test/echo", messages=[{"role": "user", "content": "hello"}], max_tokens=7)
    completion = raw.parse()
    assert completion.id.startswith("gen-")
    assert raw.headers["x-generation-id"] == completion.id
    assert completion.model == "test/echo"
    assert completion.choices[0].message.content == " alpha beta gamma delta epsilon zeta eta"
    extra = completion.model_extra or {}
    assert extra["provider"] == "stub"
    usage = completion.usage
    assert usage is not None and usage.completion_tokens == 7
    # The upstream saw its own model name and no gateway-only fields.
    sent = running.upstream.requests[-1]
    assert sent["model"] == "echo-upstream"
    # cost = prompt * 1.25/M + 7 * 10/M, exactly
    expected_nano = usage.prompt_tokens * 1250 + 7 * 10_000
    assert (usage.model_extra or {})["cost"] == pytest.approx(expected_nano / 1e9)
    rows = _rows(running)
    assert len(rows) == 1
    row = rows[0]
    assert row["id"] == completion.id and row["key_id"] == running.key_id
    assert row["status"] == "success" and not row["streamed"]
    assert row["prompt_tokens"] == usage.prompt_tokens and row["completion_tokens"] == 7
    assert row["cost_nanousd"] == expected_nano
    assert row["upstream_model"] == "echo-upstream" and row["provider"] == "stub"
    assert _key_usage(running) == expected_nano


async def test_openai_sdk_async_stream_ends_with_usage(running: Running) -> None:
    client = openai.AsyncOpenAI(base_url=running.url + "/v1", api_key=running.key, max_retries=0)
    stream = await client.chat.completions.create(
        model="test/echo", messages=[{"role": "user", "content": "hi"}], max_tokens=5, stream=True)
    content, usage_chunks, ids = [], [], set()
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices:
            content.append(chunk.choices[0].delta.content or "")
        if chunk.usage is not None:
            usage_chunks.append(chunk)
    assert "".join(content) == " alpha beta gamma delta epsilon"
    assert len(ids) == 1 and next(iter(ids)).startswith("gen-")
    assert len(usage_chunks) == 1 and usage_chunks[0].choices == []
    assert usage_chunks[0].usage is not None and usage_chunks[0].usage.completion_tokens == 5
    # tollway asked the upstream for usage even though the client did not.
    assert running.upstream.requests[-1]["stream_options"] == {"include_usage": True}
    row = _rows(running)[0]
    assert row["streamed"] and row["status"] == "success" and row["finish_reason"] == "stop"
    assert row["completion_tokens"] == 5 and not row["estimated"]
    assert row["ttft_ms"] is not None


def test_openai_sdk_sync_stream(running: Running) -> None:
    client = openai.OpenAI(base_url=running.url + "/api/v1", api_key=running.key, max_retries=0)
    with client.chat.completions.create(model="test/echo", messages=[{"role": "user", "content": "x"}],
                                        max_tokens=3, stream=True,
                                        stream_options={"include_usage": True}) as stream:
        chunks = list(stream)
    assert [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content] == \
        [" alpha", " beta", " gamma"]
    assert chunks[-1].usage is not None


def test_openrouter_sdk_send_and_stream(running: Running) -> None:
    with OpenRouter(api_key=running.key, server_url=running.url + "/api/v1",
                    http_referer="https://app.example", x_open_router_title="Example App") as client:
        result = client.chat.send(model="test/echo", messages=[{"role": "user", "content": "hello"}],
                                  max_tokens=4)
        assert result.id.startswith("gen-")
        assert result.choices[0].message.content == " alpha beta gamma delta"
        assert result.usage is not None and result.usage.completion_tokens == 4
        events = client.chat.send(model="test/echo", messages=[{"role": "user", "content": "hello"}],
                                  max_tokens=2, stream=True)
        pieces = []
        usage = None
        for event in events:
            for choice in event.choices:
                pieces.append(choice.delta.content or "")
            if event.usage is not None:
                usage = event.usage
        assert "".join(pieces) == " alpha beta"
        assert usage is not None and usage.completion_tokens == 2
    rows = _rows(running)
    assert {r["app"] for r in rows} == {"https://app.example"}
    assert {r["app_title"] for r in rows} == {"Example App"}


def test_generation_lookup_is_private_to_its_key(running: Running) -> None:
    from tests.support.servers import new_key

    client = openai.OpenAI(base_url=running.url + "/v1", api_key=running.key, max_retries=0)
    completion = client.chat.completions.create(model="test/echo", messages=[{"role": "user", "content": "a"}])
    import httpx

    mine = httpx.get(running.url + "/api/v1/generation", params={"id": completion.id},
                     headers={"Authorization": f"Bearer {running.key}"})
    assert mine.status_code == 200
    data = mine.json()["data"]
    assert data["id"] == completion.id and data["model"] == "test/echo"
    assert data["tokens_completion"] == completion.usage.completion_tokens  # type: ignore[union-attr]
    # One attempt: the ledger row carries no attempt list, the response rebuilds it from the row.
    assert [(a["provider"], a["model"], a["status"]) for a in data["provider_responses"]] == \
        [(data["provider_name"], "test/echo", 200)]
    assert [r["attempts"] for r in _rows(running) if r["id"] == completion.id] == [None]
    _, other = new_key(running.database, name="bob")
    theirs = httpx.get(running.url + "/api/v1/generation", params={"id": completion.id},
                       headers={"Authorization": f"Bearer {other}"})
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == 404


def test_health_and_models_and_metrics(running: Running) -> None:
    import httpx

    assert httpx.get(running.url + "/health").json()["status"] == "ok"
    client = openai.OpenAI(base_url=running.url + "/v1", api_key=running.key, max_retries=0)
    client.chat.completions.create(model="test/echo", messages=[{"role": "user", "content": "a"}])
    metrics = httpx.get(running.url + "/metrics").text
    assert 'tollway_requests_total{model="test/echo",provider="stub",status="success"} 1.0' in metrics
    assert "tollway_request_latency_seconds_bucket" in metrics
    assert 'tollway_tokens_total{model="test/echo",provider="stub",type="completion"}' in metrics


def test_client_disconnect_mid_stream_is_billed_and_marked_cancelled(running: Running) -> None:
    running.upstream.behaviour.chunk_delay_s = 0.05
    host, port = running.url.removeprefix("http://").split(":")
    body = json.dumps({"model": "test/echo", "stream": True, "max_tokens": 200,
                       "messages": [{"role": "user", "content": "long story"}]}).encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Authorization: Bearer {running.key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                 + body)
    received = b""
    while received.count(b"data: ") < 4:
        received += sock.recv(65536)
    sock.close()
    # Wait until the gateway has metered the cancelled stream.
    import time

    deadline = time.monotonic() + 10
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = _rows(running)
        if rows:
            break
        time.sleep(0.05)
    assert len(rows) == 1, "the cancelled stream was not recorded"
    row = rows[0]
    assert row["status"] == "cancelled" and row["cancelled"]
    assert row["estimated"]  # the upstream never got to report usage
    assert 4 <= row["completion_tokens"] < 200
    assert row["cost_nanousd"] > 0
    # The upstream connection was closed rather than left generating all 200 tokens.
    assert running.upstream.chunks_sent < 200
    assert _key_usage(running) == row["cost_nanousd"]


def test_upstream_without_usage_is_counted_locally(running: Running) -> None:
    running.upstream.behaviour.send_usage = False
    client = openai.OpenAI(base_url=running.url + "/v1", api_key=running.key, max_retries=0)
    completion = client.chat.completions.create(model="test/echo", max_tokens=8,
                                                messages=[{"role": "user", "content": "x" * 400}])
    assert completion.usage is not None and completion.usage.prompt_tokens >= 100
    with client.chat.completions.create(model="test/echo", max_tokens=8, stream=True,
                                        messages=[{"role": "user", "content": "y" * 400}]) as s:
        chunks = list(s)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    rows = _rows(running)
    assert len(rows) == 2 and all(r["estimated"] for r in rows)


def test_cached_and_reasoning_tokens_use_their_prices(running: Running) -> None:
    running.upstream.behaviour.cached_tokens = 40
    running.upstream.behaviour.reasoning_tokens = 3
    client = openai.OpenAI(base_url=running.url + "/v1", api_key=running.key, max_retries=0)
    completion = client.chat.completions.create(model="test/echo", max_tokens=6,
                                                messages=[{"role": "user", "content": "z" * 400}])
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 40
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 3
    row = _rows(running)[0]
    fresh = usage.prompt_tokens - 40
    # 1.25 $/M fresh input, 0.125 $/M cached input, 10 $/M output -> nano-dollars
    assert row["cost_nanousd"] == fresh * 1250 + 40 * 125 + 6 * 10_000
    assert row["cached_tokens"] == 40 and row["reasoning_tokens"] == 3
    assert Decimal(row["cost_nanousd"]) / 10**9 == Decimal((usage.model_extra or {})["cost"]).quantize(
        Decimal("1e-9"))
