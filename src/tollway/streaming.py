"""SSE out to the client: the closing usage chunk, mid-stream errors, disconnect handling.

Adapters yield OpenAI chunk bytes; this module ends every stream the same way (a usage
chunk with ``choices: []`` and the cost, then ``data: [DONE]``), and
:class:`SSEResponse` relays it while watching for the client hanging up, so a
cancelled stream is closed upstream at once and billed for what was generated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from tollway.adapters.base import MidStreamError, StreamState, Target
from tollway.metering import Usage, estimate_tokens_from_bytes, nano_to_usd

DONE = b"data: [DONE]\n\n"


def render_usage(usage: Usage, cost_nano: int, prompt_cost_nano: int | None = None) -> dict[str, Any]:
    """OpenAI's usage object with OpenRouter's ``cost`` (USD) and ``cost_details``, plus
    tollway's exact figure (integer nano-dollars) in a ``tollway`` extension object."""
    prompt_nano = cost_nano if prompt_cost_nano is None else prompt_cost_nano
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens,
                                  "cache_write_tokens": usage.cache_write_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cost": nano_to_usd(cost_nano),
        "is_byok": False,
        "cost_details": {"upstream_inference_cost": None,
                         "upstream_inference_prompt_cost": nano_to_usd(prompt_nano),
                         "upstream_inference_completions_cost": nano_to_usd(cost_nano - prompt_nano)},
        "tollway": {"cost_nanousd": cost_nano, "estimated": usage.estimated},
    }


def _provider(target: Target) -> str:
    return target.provider.display_name or target.provider.name


def final_chunks(generation_id: str, target: Target, usage: dict[str, Any]) -> bytes:
    chunk = {"id": generation_id, "object": "chat.completion.chunk", "created": int(time.time()),
             "model": target.model.id, "provider": _provider(target),
             "choices": [], "usage": usage}
    return b"data: " + orjson.dumps(chunk) + b"\n\n" + DONE


def midstream_error_chunk(generation_id: str, target: Target, exc: MidStreamError) -> bytes:
    """OpenRouter's mid-stream error: ``finish_reason: "error"`` plus an ``error`` object."""
    chunk = {
        "id": generation_id, "object": "chat.completion.chunk", "created": int(time.time()),
        "model": target.model.id, "provider": _provider(target),
        "error": {"code": 502, "message": exc.message,
                  "metadata": {"provider_name": exc.provider}},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error",
                     "native_finish_reason": "error"}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_usage(state: StreamState, prompt_estimate: Callable[[], int]) -> Usage:
    """What a finished or cut stream is billed for.

    The upstream's usage when it covers the output; when it covers only the prompt
    (Anthropic's ``message_start`` placeholder, Gemini's counts before the finishing
    chunk: the stream was cut), its prompt counts plus the estimate of the text sent;
    with no usage at all, the local estimate.  Anything not the upstream's own final
    count is marked estimated.
    """
    usage = state.usage
    if usage is not None and not state.usage_partial:
        return usage
    if usage is None:
        return estimate_stream_usage(state, prompt_estimate())
    sent = estimate_stream_usage(state, 0).completion_tokens
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=sent, cached_tokens=usage.cached_tokens,
                 cache_write_tokens=usage.cache_write_tokens, reasoning_tokens=min(usage.reasoning_tokens, sent),
                 estimated=True)


def estimate_stream_usage(state: StreamState, prompt_estimate: int) -> Usage:
    """Count tokens locally from the relayed chunks when the upstream reported none."""
    text_bytes = state.sent_text_bytes()
    if not text_bytes:
        for block in state.relayed:
            for event in block.split(b"\n\n"):
                if not event.startswith(b"data:"):
                    continue
                try:
                    obj = orjson.loads(event[5:])
                except orjson.JSONDecodeError:
                    continue
                for choice in obj.get("choices") or () if isinstance(obj, dict) else ():
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    if not isinstance(delta, dict):
                        continue
                    for field in ("content", "reasoning", "reasoning_content"):
                        if isinstance(delta.get(field), str):
                            text_bytes += len(delta[field].encode("utf-8", "replace"))
                    for call in delta.get("tool_calls") or ():
                        fn = call.get("function") if isinstance(call, dict) else None
                        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                            text_bytes += len(fn["arguments"])
    return Usage(prompt_tokens=prompt_estimate, completion_tokens=estimate_tokens_from_bytes(text_bytes),
                 estimated=True)


class SSEResponse:
    """A streaming ASGI response that cancels its producer when the client disconnects."""

    def __init__(self, iterator: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        self.iterator = iterator
        self.headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no")]
        for name, value in (headers or {}).items():
            self.headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        # The stream is relayed in this task; a small watcher task cancels it if the
        # client hangs up (uvicorn's send() after a disconnect is a silent no-op, so the
        # relay itself would never notice).  One extra task per stream, nothing per chunk.
        relay = asyncio.current_task()
        assert relay is not None
        hung_up = finished = False

        def on_disconnect(watcher: asyncio.Task[None]) -> None:
            nonlocal hung_up
            # A callback already scheduled when the relay finished must not cancel
            # whatever the server runs next in this task.
            if not finished and not watcher.cancelled():
                hung_up = True
                relay.cancel()

        watch = asyncio.ensure_future(self._watch(receive))
        watch.add_done_callback(on_disconnect)
        try:
            await self._pump(send)
        except asyncio.CancelledError:
            if not hung_up:
                raise  # cancelled from outside (shutdown): propagate
            relay.uncancel()  # our own cancellation: the client is gone, the response is over
        finally:
            finished = True
            watch.remove_done_callback(on_disconnect)
            watch.cancel()

    async def _pump(self, send: Send) -> None:
        iterator = self.iterator
        try:
            async for chunk in iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
