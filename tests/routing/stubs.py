"""Stub OpenAI-format upstreams for routing tests, each with its own fault schedule.

Every stub speaks OpenAI's documented chat-completions wire format (``chat.completion``
objects; SSE ``chat.completion.chunk`` events, the usage-only chunk when
``stream_options.include_usage`` is set, ``data: [DONE]``) and answers each request as
its ``plan`` says: ``ok``, an HTTP status such as ``500`` / ``429`` / ``400``, ``hang``
(never answers), ``drop`` (streams two chunks, then cuts the connection) or ``stall``
(streams two chunks, then sends nothing more, the connection left open).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

WORDS = [" alpha", " beta", " gamma", " delta", " epsilon", " zeta"]


def flaky(seed: int, error_rate: float, hang_rate: float) -> Callable[[int], str]:
    """A seeded schedule: ``error_rate`` of requests 500, ``hang_rate`` hang, the rest ok."""
    rng = random.Random(seed)

    def plan(_n: int) -> str:
        x = rng.random()
        if x < error_rate:
            return "500"
        if x < error_rate + hang_rate:
            return "hang"
        return "ok"

    return plan


@dataclass
class Stub:
    name: str
    plan: Callable[[int], str] = lambda _n: "ok"
    chunks: int = 4
    requests: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    def count(self, outcome: str | None = None) -> int:
        return len(self.outcomes) if outcome is None else self.outcomes.count(outcome)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw)
        self.requests.append(body)
        action = self.plan(len(self.requests) - 1)
        self.outcomes.append(action)
        if action == "hang":
            await asyncio.sleep(3600)  # cancelled when the gateway gives up and disconnects
        if action.isdigit():
            return web.json_response({"error": {"message": f"{self.name} says {action}",
                                                "type": "server_error", "code": None}},
                                     status=int(action))
        n = int(body.get("max_tokens") or self.chunks)
        prompt = max(1, len(raw) // 4)
        usage = {"prompt_tokens": prompt, "completion_tokens": n, "total_tokens": prompt + n}
        created = int(time.time())
        if not body.get("stream"):
            return web.json_response({
                "id": f"chatcmpl-{self.name}", "object": "chat.completion", "created": created,
                "model": body["model"], "system_fingerprint": None,
                "choices": [{"index": 0, "message": {"role": "assistant",
                                                     "content": "".join(WORDS[i % 6] for i in range(n))},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def event(obj: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        base = {"id": f"chatcmpl-{self.name}", "object": "chat.completion.chunk", "created": created,
                "model": body["model"], "system_fingerprint": None}
        for i in range(n):
            if action == "drop" and i == 2:
                assert request.transport is not None
                request.transport.close()
                return resp
            if action == "stall" and i == 2:
                await asyncio.sleep(3600)  # cancelled when the gateway gives up and disconnects
            delta = {"role": "assistant", "content": WORDS[i % 6]} if i == 0 else {"content": WORDS[i % 6]}
            await resp.write(event({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                                         "finish_reason": None}]}))
        await resp.write(event({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                                     "finish_reason": "stop"}]}))
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(event({**base, "choices": [], "usage": usage}))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
