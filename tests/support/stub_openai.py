"""A stub upstream that speaks the OpenAI chat-completions wire format on loopback.

Responses follow OpenAI's documented shapes byte for byte as far as tollway cares:
``chat.completion`` objects, SSE ``chat.completion.chunk`` events (``data: {...}\\n\\n``),
the usage-only chunk (``choices: []``) when ``stream_options.include_usage`` is set, and
``data: [DONE]``.  Behaviour per request is steered by the ``behaviour`` dict on the
stub (tests set it) so that tests can inject faults.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

WORDS = [" alpha", " beta", " gamma", " delta", " epsilon", " zeta", " eta", " theta"]


@dataclass
class StubBehaviour:
    status: int = 200  # non-200: answer with an OpenAI error body
    error_message: str = "upstream exploded"
    chunk_delay_s: float = 0.0
    send_usage: bool = True
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    drop_after_chunks: int | None = None  # abort the connection mid-stream
    hang: bool = False


@dataclass
class StubOpenAI:
    api_key: str = "sk-upstream-secret"
    behaviour: StubBehaviour = field(default_factory=StubBehaviour)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    served_completion_tokens: int = 0
    chunks_sent: int = 0
    stream_closed_early: asyncio.Event | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    def prompt_tokens(self, raw: bytes) -> int:
        return max(1, len(raw) // 4)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        b = self.behaviour
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response({"error": {"message": "Incorrect API key provided", "type":
                                                "invalid_request_error", "code": "invalid_api_key"}},
                                     status=401)
        if b.hang:
            await asyncio.sleep(3600)
        if b.status != 200:
            return web.json_response({"error": {"message": b.error_message, "type": "server_error",
                                                "code": None}}, status=b.status)
        n = int(body.get("max_tokens") or body.get("max_completion_tokens") or 4)
        prompt = self.prompt_tokens(raw)
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n,
                 "prompt_tokens_details": {"cached_tokens": b.cached_tokens},
                 "completion_tokens_details": {"reasoning_tokens": b.reasoning_tokens}}
        created = int(time.time())
        if not body.get("stream"):
            self.served_completion_tokens += n
            doc: dict[str, Any] = {
                "id": "chatcmpl-stub123", "object": "chat.completion", "created": created,
                "model": body["model"], "system_fingerprint": "fp_stub",
                "choices": [{"index": 0, "message": {"role": "assistant", "content":
                             "".join(WORDS[i % len(WORDS)] for i in range(n)), "refusal": None},
                             "logprobs": None, "finish_reason": "length" if body.get("max_tokens") else "stop"}],
            }
            if b.send_usage:
                doc["usage"] = usage
            return web.json_response(doc)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            return b"data: " + json.dumps({
                "id": "chatcmpl-stub456", "object": "chat.completion.chunk", "created": created,
                "model": body["model"], "system_fingerprint": "fp_stub",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }, separators=(",", ":")).encode() + b"\n\n"

        try:
            for i in range(n):
                if b.drop_after_chunks is not None and i == b.drop_after_chunks:
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                delta = {"role": "assistant", "content": WORDS[i % len(WORDS)]} if i == 0 \
                    else {"content": WORDS[i % len(WORDS)]}
                await resp.write(chunk(delta, None))
                self.chunks_sent += 1
                if b.chunk_delay_s:
                    await asyncio.sleep(b.chunk_delay_s)
            await resp.write(chunk({}, "stop"))
            if b.send_usage and (body.get("stream_options") or {}).get("include_usage"):
                await resp.write(b"data: " + json.dumps({
                    "id": "chatcmpl-stub456", "object": "chat.completion.chunk", "created": created,
                    "model": body["model"], "system_fingerprint": "fp_stub", "choices": [],
                    "usage": usage}).encode() + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            self.served_completion_tokens += n
        except (ConnectionResetError, asyncio.CancelledError):
            if self.stream_closed_early is not None:
                self.stream_closed_early.set()
            raise
        return resp

    async def embeddings(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        self.requests.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        tokens = sum(max(1, len(str(x)) // 4) for x in inputs)
        return web.json_response({
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                     for i in range(len(inputs))],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })
