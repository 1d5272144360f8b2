"""An OpenAI-format upstream that answers with hostile values: an ``id`` far past the
ledger's column, a ``finish_reason`` of 60 characters, usage counts of 2**63.  Each
request takes the values in ``HostileUpstream.answer`` at the time it arrives."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Answer:
    upstream_id: str = "chatcmpl-plain"
    finish_reason: str = "stop"
    prompt_tokens: int = 5
    completion_tokens: int = 3


@dataclass
class HostileUpstream:
    answer: Answer = field(default_factory=Answer)
    served: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        a = self.answer
        usage = {"prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens,
                 "total_tokens": a.prompt_tokens + a.completion_tokens}
        created = int(time.time())
        if not body.get("stream"):
            self.served += 1
            return web.json_response({
                "id": a.upstream_id, "object": "chat.completion", "created": created, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None},
                             "logprobs": None, "finish_reason": a.finish_reason}],
                "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def event(doc: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(doc).encode() + b"\n\n"

        base = {"id": a.upstream_id, "object": "chat.completion.chunk", "created": created, "model": body["model"]}
        await resp.write(event({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"},
                                                     "logprobs": None, "finish_reason": None}]}))
        await resp.write(event({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                                     "finish_reason": a.finish_reason}]}))
        await resp.write(event({**base, "choices": [], "usage": usage}))
        await resp.write(b"data: [DONE]\n\n")
        self.served += 1
        return resp
