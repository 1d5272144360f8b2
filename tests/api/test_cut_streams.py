"""Anthropic- and Gemini-format streams cut short (the upstream drops mid-stream, or the client
hangs up) are billed for the text that was sent, marked estimated; never for the
``message_start`` placeholder of one output token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiohttp import web
from sqlalchemy import select

from tests.support.servers import aiohttp_server, gateway_server, new_key
from tollway.config import parse_settings
from tollway.ledger.db import create_db_engine
from tollway.ledger.queries import get_generation
from tollway.ledger.schema import generations
from tollway.metering import estimate_tokens_from_bytes

WORD = " tök"  # 5 UTF-8 bytes: one token per delta for a real tokenizer
DELTAS = 197
SENT_ESTIMATE = estimate_tokens_from_bytes(DELTAS * len(WORD.encode()))


def _sse(name: str | None, doc: dict[str, Any]) -> bytes:
    head = f"event: {name}\n".encode() if name else b""
    # Compact and UTF-8, as Anthropic and Google write their events.
    return head + b"data: " + json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


@dataclass
class CuttingStub:
    """Streams ``DELTAS`` text deltas, then drops the connection (or, with ``slow``, keeps
    going slowly so a client can hang up first)."""

    slow: bool = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/an/v1/messages", self.anthropic)
        app.router.add_post("/ge/v1beta/{model:.*}", self.gemini)
        return app

    async def _deltas(self, request: web.Request, resp: web.StreamResponse, event: Any) -> None:
        for i in range(DELTAS):
            await resp.write(event(i))
            if self.slow:
                await asyncio.sleep(0.02)
        assert request.transport is not None
        request.transport.close()  # the upstream drops: no message_delta, no finish

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(_sse("message_start", {"type": "message_start", "message": {
            "id": "msg_cut", "type": "message", "role": "assistant", "model": "claude-up", "content": [],
            "stop_reason": None, "usage": {"input_tokens": 21, "output_tokens": 1}}}))
        await resp.write(_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                      "content_block": {"type": "text", "text": ""}}))
        await self._deltas(request, resp, lambda i: _sse("content_block_delta", {
            "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": WORD}}))
        return resp

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        # Gemini repeats (partial) usage on every chunk; only the finishing one is final.
        await self._deltas(request, resp, lambda i: _sse(None, {
            "candidates": [{"content": {"role": "model", "parts": [{"text": WORD}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 21, "candidatesTokenCount": 1, "totalTokenCount": 22},
            "responseId": "resp-cut"}))
        return resp


@dataclass
class Running:
    url: str
    app: Any
    key: str
    database: str

    def row(self, generation_id: str) -> dict[str, Any]:
        assert self.app.state.gateway.writer.flush(10)
        engine = create_db_engine(self.database)
        try:
            with engine.connect() as conn:
                row = get_generation(conn, generation_id)
        finally:
            engine.dispose()
        assert row is not None
        return row

    def rows(self) -> list[dict[str, Any]]:
        assert self.app.state.gateway.writer.flush(10)
        engine = create_db_engine(self.database)
        with engine.connect() as conn:
            out = [dict(r._mapping) for r in conn.execute(select(generations))]
        engine.dispose()
        return out


@contextmanager
def running(tmp_path: Path, stub: CuttingStub) -> Iterator[Running]:
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    pricing = {"prompt": "3", "completion": "15"}
    with aiohttp_server(stub.app()) as upstream:
        raw = {
            "database": database, "catalog": False, "server": {"key_cache_ttl_s": 0},
            "ledger": {"flush_interval_ms": 5},
            "providers": [
                {"name": "an", "kind": "anthropic", "base_url": upstream + "/an", "api_key": "sk-an"},
                {"name": "ge", "kind": "gemini", "base_url": upstream + "/ge", "api_key": "sk-ge"}],
            "models": [{"id": "test/claude", "endpoints": [{"provider": "an", "model": "claude-up",
                                                            "pricing": pricing}]},
                       {"id": "test/gem", "endpoints": [{"provider": "ge", "model": "gemini-up",
                                                         "pricing": pricing}]}],
        }
        _, key = new_key(database)
        with gateway_server(parse_settings(raw, source="test")) as (url, app):
            yield Running(url, app, key, database)


def _assert_billed_for_the_text(row: dict[str, Any], status: str) -> None:
    assert row["status"] == status
    assert row["completion_tokens"] == SENT_ESTIMATE > 1, "billed the placeholder, not the text sent"
    assert row["prompt_tokens"] == 21  # the upstream's own prompt count is kept
    assert row["estimated"] is True
    assert row["cost_nanousd"] == 21 * 3000 + SENT_ESTIMATE * 15000


def test_a_dropped_anthropic_passthrough_stream_is_billed_for_its_text(tmp_path: Path) -> None:
    with running(tmp_path, CuttingStub()) as r:
        resp = httpx.post(r.url + "/v1/messages", headers={"x-api-key": r.key}, timeout=30, json={
            "model": "test/claude", "max_tokens": 500, "stream": True,
            "messages": [{"role": "user", "content": "talk"}]})
        start = json.loads(resp.text.split("\n\n", 1)[0].split("data: ", 1)[1])
        assert "event: error" in resp.text
        _assert_billed_for_the_text(r.row(start["message"]["id"]), "error")


def test_a_dropped_anthropic_stream_translated_to_chat_is_billed_for_its_text(tmp_path: Path) -> None:
    with running(tmp_path, CuttingStub()) as r:
        resp = httpx.post(r.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {r.key}"},
                          timeout=30, json={"model": "test/claude", "max_tokens": 500, "stream": True,
                                            "messages": [{"role": "user", "content": "talk"}]})
        events = [json.loads(line[6:]) for line in resp.text.splitlines()
                  if line.startswith("data: {")]
        usage = events[-1]["usage"]
        assert usage["completion_tokens"] == SENT_ESTIMATE and usage["tollway"]["estimated"] is True
        _assert_billed_for_the_text(r.row(events[0]["id"]), "error")


def test_a_dropped_gemini_stream_is_billed_for_its_text_not_its_partial_count(tmp_path: Path) -> None:
    with running(tmp_path, CuttingStub()) as r:
        resp = httpx.post(r.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {r.key}"},
                          timeout=30, json={"model": "test/gem", "max_tokens": 500, "stream": True,
                                            "messages": [{"role": "user", "content": "talk"}]})
        events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: {")]
        _assert_billed_for_the_text(r.row(events[0]["id"]), "error")


async def test_a_client_hanging_up_on_an_anthropic_stream_is_billed_for_what_was_sent(tmp_path: Path) -> None:
    with running(tmp_path, CuttingStub(slow=True)) as r:
        async with aiohttp.ClientSession() as http, http.post(
                r.url + "/v1/messages", headers={"x-api-key": r.key}, json={
                    "model": "test/claude", "max_tokens": 500, "stream": True,
                    "messages": [{"role": "user", "content": "talk"}]}) as resp:
            received = b""
            while received.count(b"content_block_delta") < 2 * 40:  # event name + type
                received += await resp.content.readany()
        rows: list[dict[str, Any]] = []
        for _ in range(200):  # until the gateway has noticed the hang-up and recorded it
            rows = await asyncio.to_thread(r.rows)
            if rows:
                break
            await asyncio.sleep(0.05)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "cancelled" and row["cancelled"] and row["estimated"]
    assert row["prompt_tokens"] == 21
    # At least the 40 deltas the client read, never the placeholder, less than the whole text.
    assert estimate_tokens_from_bytes(40 * len(WORD.encode())) <= row["completion_tokens"] < SENT_ESTIMATE
