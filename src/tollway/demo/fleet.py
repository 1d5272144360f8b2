"""Simulated providers: real HTTP servers on loopback that speak each vendor's wire format.

Every server answers the three formats tollway has adapters for (OpenAI chat completions,
Anthropic messages, Gemini generateContent, plus the OpenAI-compatible layers Anthropic and
Google offer), so a provider's ``kind`` alone decides which one the gateway uses.  What
makes providers differ is their :class:`Profile`: time to first token, tokens per second and
error rate, scaled down so weeks of traffic fit in a minute.

The text is filler, but the usage is the workload's: the demo client puts a marker such as
``[sim prompt=51850 cached=42000 completion=458]`` in the prompt, and the simulated
provider "tokenizes" the request as that many tokens (the demo does not ship megabytes of
prompt through loopback to make a point about token counts).  Without a marker the prompt
is counted at ~4 bytes per token.

Every simulated provider is labelled: names start with ``sim-`` and display names end in
"(simulated)".
"""

from __future__ import annotations

import asyncio
import random
import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

MARKER = re.compile(rb"\[sim prompt=(\d+) cached=(\d+) completion=(\d+)\]")
_TEXT = ("the gateway routes each request to the cheapest healthy provider and meters every token "
         "so that the weekly rankings show which models people actually use while fallbacks keep "
         "agents running when a provider has a bad day")
_WORDS = tuple(_TEXT.split())
MAX_CHUNKS = 8  # a streamed answer is sent in at most this many SSE events


@dataclass(frozen=True, slots=True)
class Profile:
    """How a provider behaves.  Seconds are real (already scaled down for the demo)."""

    ttft_s: float = 0.02
    tokens_per_s: float = 20_000.0
    error_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class SimProvider:
    """One simulated provider: its name in the config, its wire format and its behaviour."""

    name: str
    display_name: str
    kind: str  # openai | anthropic | gemini: the wire format it is configured with
    hosting_country: str
    profile: Profile
    first_party_for: tuple[str, ...] = ()


@dataclass(slots=True)
class Usage:
    prompt: int
    cached: int
    completion: int


@dataclass(slots=True)
class ProviderStats:
    """What one simulated server saw (the demo's tests compare it with the ledger)."""

    requests: int = 0
    errors: int = 0
    by_format: dict[str, int] = field(default_factory=dict)


def parse_usage(raw: bytes, max_tokens: int | None) -> Usage:
    """The marker's sizes, or an estimate from the body when there is none."""
    match = MARKER.search(raw)
    if match:
        prompt, cached, completion = (int(g) for g in match.groups())
    else:
        prompt, cached, completion = max(1, len(raw) // 4), 0, 16
    if max_tokens:
        completion = min(completion, max_tokens)
    return Usage(prompt=prompt, cached=min(cached, prompt), completion=max(1, completion))


def filler(tokens: int, seed: int) -> list[str]:
    """``tokens`` words of plausible filler, one word standing for one token."""
    start = seed % len(_WORDS)
    return [_WORDS[(start + i) % len(_WORDS)] for i in range(tokens)]


def _split(words: list[str], parts: int) -> list[str]:
    size = max(1, -(-len(words) // parts))
    return [" ".join(words[i:i + size]) + " " for i in range(0, len(words), size)]


class SimServer:
    """The aiohttp application of one simulated provider."""

    def __init__(self, provider: SimProvider, seed: int = 0) -> None:
        self.provider = provider
        self.rng = random.Random(f"{provider.name}:{seed}")
        self.stats = ProviderStats()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        # Routed by the path's end, so any base-URL convention (with or without /v1) works.
        app.router.add_post("/{path:.*}", self._dispatch)
        app.router.add_get("/{path:.*}models", self._models)
        return app

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.endswith("/chat/completions"):
            return await self._openai(request)
        if path.endswith("/messages"):
            return await self._anthropic(request)
        if "/models/" in path and path.rpartition(":")[2] in ("generateContent", "streamGenerateContent"):
            return await self._gemini(request)
        raise web.HTTPNotFound()

    # -- behaviour ---------------------------------------------------------------------

    def _fails(self, fmt: str) -> bool:
        self.stats.requests += 1
        self.stats.by_format[fmt] = self.stats.by_format.get(fmt, 0) + 1
        failed = self.rng.random() < self.provider.profile.error_rate
        if failed:
            self.stats.errors += 1
        return failed

    def _generation_s(self, tokens: int) -> float:
        return tokens / self.provider.profile.tokens_per_s

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    # -- OpenAI ------------------------------------------------------------------------

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        if self._fails("openai"):
            return web.json_response({"error": {"message": f"{self.provider.display_name} is overloaded",
                                                "type": "server_error", "code": "overloaded"}}, status=503)
        usage = parse_usage(raw, body.get("max_tokens") or body.get("max_completion_tokens"))
        model, ident = str(body.get("model")), "chatcmpl-" + secrets.token_hex(12)
        words = filler(usage.completion, usage.prompt)
        await asyncio.sleep(self.provider.profile.ttft_s)
        usage_doc = {"prompt_tokens": usage.prompt, "completion_tokens": usage.completion,
                     "total_tokens": usage.prompt + usage.completion,
                     "prompt_tokens_details": {"cached_tokens": usage.cached}}
        if not body.get("stream"):
            await asyncio.sleep(self._generation_s(usage.completion))
            return web.json_response({
                "id": ident, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(words)},
                             "finish_reason": "stop"}],
                "usage": usage_doc})

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            doc = {"id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
                   "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + orjson.dumps(doc) + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""}, None)]
        events += [chunk({"content": part}, None) for part in _split(words, MAX_CHUNKS)]
        events.append(chunk({}, "stop"))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            events.append(b"data: " + orjson.dumps({
                "id": ident, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model, "choices": [], "usage": usage_doc}) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return await self._sse(request, events, usage.completion)

    # -- Anthropic ---------------------------------------------------------------------

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = orjson.loads(raw)
        if self._fails("anthropic"):
            return web.json_response({"type": "error", "error": {
                "type": "overloaded_error", "message": f"{self.provider.display_name} is overloaded"}},
                status=529)
        usage = parse_usage(raw, body.get("max_tokens"))
        model, ident = str(body.get("model")), "msg_" + secrets.token_hex(12)
        words = filler(usage.completion, usage.prompt)
        # Anthropic counts cache reads apart from (not inside) input_tokens.
        in_usage = {"input_tokens": usage.prompt - usage.cached, "cache_read_input_tokens": usage.cached,
                    "cache_creation_input_tokens": 0}
        await asyncio.sleep(self.provider.profile.ttft_s)
        if not body.get("stream"):
            await asyncio.sleep(self._generation_s(usage.completion))
            return web.json_response({
                "id": ident, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": " ".join(words)}], "stop_reason": "end_turn",
                "stop_sequence": None, "usage": {**in_usage, "output_tokens": usage.completion}})

        def event(name: str, data: dict[str, Any]) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + orjson.dumps({"type": name, **data}) + b"\n\n"

        events = [
            event("message_start", {"message": {
                "id": ident, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {**in_usage, "output_tokens": 1}}}),
            event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            event("ping", {}),
        ]
        events += [event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": part}})
                   for part in _split(words, MAX_CHUNKS)]
        events += [event("content_block_stop", {"index": 0}),
                   event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                           "usage": {"output_tokens": usage.completion}}),
                   event("message_stop", {})]
        return await self._sse(request, events, usage.completion)

    # -- Gemini ------------------------------------------------------------------------

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.path.rpartition("/models/")[2].partition(":")
        raw = await request.read()
        body = orjson.loads(raw)
        if self._fails("gemini"):
            return web.json_response({"error": {"code": 503, "status": "UNAVAILABLE",
                                                "message": f"{self.provider.display_name} is overloaded"}},
                                     status=503)
        config = body.get("generationConfig") or {}
        usage = parse_usage(raw, config.get("maxOutputTokens"))
        words = filler(usage.completion, usage.prompt)
        ident = secrets.token_hex(10)
        meta = {"promptTokenCount": usage.prompt, "candidatesTokenCount": usage.completion,
                "totalTokenCount": usage.prompt + usage.completion,
                "cachedContentTokenCount": usage.cached}

        def doc(text: str, finish: str | None, usage_meta: dict[str, Any] | None) -> dict[str, Any]:
            candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if finish:
                candidate["finishReason"] = finish
            out: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": ident}
            if usage_meta:
                out["usageMetadata"] = usage_meta
            return out

        await asyncio.sleep(self.provider.profile.ttft_s)
        if action == "generateContent":
            await asyncio.sleep(self._generation_s(usage.completion))
            return web.json_response(doc(" ".join(words), "STOP", meta))
        parts = _split(words, MAX_CHUNKS)
        events = [b"data: " + orjson.dumps(doc(part, "STOP" if i == len(parts) - 1 else None,
                                                meta if i == len(parts) - 1 else None)) + b"\r\n\r\n"
                  for i, part in enumerate(parts)]
        return await self._sse(request, events, usage.completion)

    # -- shared ------------------------------------------------------------------------

    async def _sse(self, request: web.Request, events: list[bytes], tokens: int) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        pause = self._generation_s(tokens) / max(1, len(events) - 1)
        for i, data in enumerate(events):
            if i:
                await asyncio.sleep(pause)
            await response.write(data)
        await response.write_eof()
        return response


class Fleet:
    """Every simulated provider, each on its own loopback port, in the caller's event loop."""

    def __init__(self, providers: list[SimProvider], seed: int = 0) -> None:
        self.servers = {p.name: SimServer(p, seed) for p in providers}
        self.ports: dict[str, int] = {}
        self._runners: list[web.AppRunner] = []

    async def start(self) -> None:
        for name, server in self.servers.items():
            runner = web.AppRunner(server.app(), access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))  # an ephemeral port, known before the site starts
            await web.SockSite(runner, sock).start()
            self._runners.append(runner)
            self.ports[name] = int(sock.getsockname()[1])

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()
