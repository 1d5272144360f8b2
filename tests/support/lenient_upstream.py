"""An OpenAI-format upstream for fuzzing: it answers whatever the gateway forwards as a real
provider would, a 400 in OpenAI's error shape for a body it cannot use, else a short
completion (JSON or SSE with usage) or embeddings.  It caps the completion length so a fuzzed
``max_tokens`` of 10^12 costs nothing, and counts the completion tokens it served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

CAP = 8


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "code": None}},
                             status=400)


@dataclass
class LenientUpstream:
    served_completion_tokens: int = 0
    requests: int = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    async def _body(self, request: web.Request) -> dict[str, Any] | None:
        self.requests += 1
        try:
            body = json.loads(await request.read())
        except ValueError:
            return None
        return body if isinstance(body, dict) and isinstance(body.get("model"), str) else None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        if body is None or not isinstance(body.get("messages"), list):
            return _bad("'messages' must be a list")
        asked = body.get("max_tokens") or body.get("max_completion_tokens")
        n = min(asked, CAP) if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else CAP
        usage = {"prompt_tokens": 10, "completion_tokens": n, "total_tokens": 10 + n}
        base = {"id": "chatcmpl-lenient", "created": 1, "model": body["model"]}
        if body.get("stream") is not True:
            self.served_completion_tokens += n
            return web.json_response({**base, "object": "chat.completion", "usage": usage, "choices": [
                {"index": 0, "message": {"role": "assistant", "content": " word" * n}, "finish_reason": "stop"}]})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(n):
            delta = {"role": "assistant", "content": " word"} if i == 0 else {"content": " word"}
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        final = {**base, "object": "chat.completion.chunk", "usage": usage,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await resp.write(b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n")
        self.served_completion_tokens += n
        return resp

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body is None or "input" not in body:
            return _bad("'input' is required")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response({"object": "list", "model": body["model"],
                                  "data": [{"object": "embedding", "index": i, "embedding": [0.5, 0.25]}
                                           for i in range(len(inputs))],
                                  "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
