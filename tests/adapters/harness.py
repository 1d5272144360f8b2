"""A real gateway (uvicorn, real sockets) in front of one stub upstream that speaks all three
wire formats from fixture files, both on loopback (servers from ``tests.support.servers``).

The stub answers each request with the next scripted :class:`Reply` (fixture bytes, written
in small pieces so the gateway's SSE parsing sees events split across reads) and records
every request it received, so tests can check the translated upstream request.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from tests.support.servers import aiohttp_server, gateway_server, new_key, postgres_database
from tollway.config import parse_settings
from tollway.ledger.db import create_db_engine
from tollway.ledger.queries import get_generation

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wire"
FORMATS = ("openai", "anthropic", "gemini")
MODEL_OF = {"openai": "test/oa", "anthropic": "test/claude", "gemini": "test/gem"}
# USD per million tokens; cache prices differ from the prompt price so a cost test can tell.
PRICING = {"prompt": "3", "completion": "15", "cache_read": "0.3", "cache_write": "3.75"}


def fixture(fmt: str, name: str) -> bytes:
    return (FIXTURES / fmt / name).read_bytes()


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    piece: int = 37  # bytes per write, so events straddle reads

    @classmethod
    def of(cls, fmt: str, name: str, status: int = 200) -> Reply:
        sse = name.endswith(".sse")
        return cls(status, fixture(fmt, name), "text/event-stream" if sse else "application/json")


@dataclass
class Received:
    path: str
    query: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Stub:
    replies: list[Reply] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def script(self, *replies: Reply) -> None:
        self.replies[:] = replies
        self.received.clear()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.received.append(Received(request.path, request.query_string,
                                      {k.lower(): v for k, v in request.headers.items()},
                                      orjson.loads(raw) if raw else {}))
        if not self.replies:
            return web.json_response({"error": {"message": "stub: no scripted reply"}}, status=599)
        reply = self.replies.pop(0)
        resp = web.StreamResponse(status=reply.status, headers={"Content-Type": reply.content_type})
        await resp.prepare(request)
        for i in range(0, len(reply.body), reply.piece):
            await resp.write(reply.body[i:i + reply.piece])
        await resp.write_eof()
        return resp


def settings_for(stub_url: str, database: str) -> dict[str, Any]:
    def model(mid: str, provider: str, upstream: str) -> dict[str, Any]:
        return {"id": mid, "endpoints": [{"provider": provider, "model": upstream, "pricing": PRICING}]}

    return {
        "database": database, "catalog": False,
        "server": {"key_cache_ttl_s": 0}, "ledger": {"flush_interval_ms": 5},
        "providers": [
            {"name": "stub-openai", "kind": "openai", "base_url": f"{stub_url}/oa/v1", "api_key": "sk-oa"},
            {"name": "stub-anthropic", "kind": "anthropic", "base_url": f"{stub_url}/an", "api_key": "sk-an"},
            {"name": "stub-gemini", "kind": "gemini", "base_url": f"{stub_url}/ge", "api_key": "sk-ge"},
        ],
        "models": [
            model("test/oa", "stub-openai", "gpt-up"),
            model("test/claude", "stub-anthropic", "claude-up"),
            model("test/gem", "stub-gemini", "gemini-up"),
            model("test/oa-embed", "stub-openai", "embed-up"),
            model("test/gem-embed", "stub-gemini", "gemini-embedding-001"),
            # A fallback pair: an Anthropic-format endpoint first, an OpenAI-format one second.
            {"id": "test/mixed", "endpoints": [
                {"provider": "stub-anthropic", "model": "claude-up", "pricing": PRICING},
                {"provider": "stub-openai", "model": "gpt-up", "pricing": PRICING}]},
        ],
    }


@dataclass
class Stack:
    """A running gateway in front of the stub, with a real key, on a fresh PostgreSQL ledger."""

    url: str
    app: Any
    stub: Stub
    key: str
    key_id: str
    database: str

    def generation(self, generation_id: str) -> dict[str, Any]:
        """The generation's ledger row, after draining the batched writer."""
        assert self.app.state.gateway.writer.flush(10), "ledger writer did not drain"
        engine = create_db_engine(self.database)
        try:
            with engine.connect() as conn:
                row = get_generation(conn, generation_id)
        finally:
            engine.dispose()
        assert row is not None, f"generation {generation_id} is not in the ledger"
        return row


@contextmanager
def running_stack() -> Iterator[Stack]:
    """Fails (never skips) when PostgreSQL is not reachable at 127.0.0.1:5432."""
    stub = Stub()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", stub.handle)
    with aiohttp_server(app) as stub_url, postgres_database() as database:
        key_id, key = new_key(database, name="conformance")
        settings = parse_settings(settings_for(stub_url, database), source="test")
        with gateway_server(settings) as (url, gateway_app):
            yield Stack(url=url, app=gateway_app, stub=stub, key=key, key_id=key_id, database=database)
