"""An OpenAI-format upstream that produces and counts as much as it plausibly could.

It is the adversary of a credit limit: it counts the prompt with the least favourable
real tokenizer (one token per UTF-8 byte of text, chat-template tokens per message, an
image at OpenAI's largest tile count, a tool-use system prompt), generates the *larger*
of ``max_tokens`` and ``max_completion_tokens`` for each of ``n`` choices, and, when the
request names no cap, 10,000 tokens.  Usage is reported in OpenAI's shape, streamed or not.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

UNCAPPED_OUTPUT = 10_000
IMAGE_TOKENS = 1_445  # gpt-4o high detail, 768x2048: 8 tiles x 170 + 85
TOOL_PROMPT_TOKENS = 350  # Anthropic documents ~350 for its tool-use system prompt


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, list):
        return sum(_text_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(_text_bytes(v) for v in value.values())
    return 0


def greedy_prompt_tokens(body: dict[str, Any]) -> int:
    total = 3  # priming the assistant turn
    for message in body.get("messages") or ():
        total += 4 + _text_bytes(message.get("role"))
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            if isinstance(part, dict) and part.get("type") == "image_url":
                total += IMAGE_TOKENS
            else:
                total += _text_bytes(part)
    if body.get("tools"):
        total += TOOL_PROMPT_TOKENS + len(json.dumps(body["tools"]).encode())
    return total


def greedy_output(body: dict[str, Any]) -> int:
    caps = [v for v in (body.get("max_tokens"), body.get("max_completion_tokens")) if isinstance(v, int)]
    return max(caps) if caps else UNCAPPED_OUTPUT


@dataclass
class GreedyStub:
    requests: list[dict[str, Any]] = field(default_factory=list)
    served_nano: int = 0  # at the test's prices: what the upstream would charge

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.chat)
        return app

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        n = int(body.get("n") or 1)
        out = greedy_output(body)
        prompt = greedy_prompt_tokens(body)
        usage = {"prompt_tokens": prompt, "completion_tokens": n * out, "total_tokens": prompt + n * out}
        created = int(time.time())
        text = "x" * out  # one token per character, for whoever counts locally
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-greedy", "object": "chat.completion", "created": created, "model": body["model"],
                "choices": [{"index": i, "message": {"role": "assistant", "content": text, "refusal": None},
                             "logprobs": None, "finish_reason": "length"} for i in range(n)],
                "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def event(doc: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(doc).encode() + b"\n\n"

        base = {"id": "chatcmpl-greedy", "object": "chat.completion.chunk", "created": created,
                "model": body["model"]}
        for i in range(n):
            await resp.write(event({**base, "choices": [{"index": i, "delta": {"role": "assistant",
                                                                                 "content": text},
                                                          "finish_reason": "length"}]}))
        await resp.write(event({**base, "choices": [], "usage": usage}))
        await resp.write(b"data: [DONE]\n\n")
        return resp
