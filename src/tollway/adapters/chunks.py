"""OpenAI ``chat.completion.chunk`` events, as the translating adapters emit them."""

from __future__ import annotations

from typing import Any

import orjson

from tollway.adapters.base import CallContext


def chunk_event(ctx: CallContext, provider: str, delta: dict[str, Any], *,
                finish_reason: str | None = None, native_finish_reason: str | None = None) -> bytes:
    """One ``data: {chunk}`` event with tollway's id, model and provider."""
    choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish_reason,
                              "native_finish_reason": native_finish_reason, "logprobs": None}
    chunk = {"id": ctx.generation_id, "object": "chat.completion.chunk", "created": ctx.created,
             "model": ctx.model_id, "provider": provider,
             "choices": [choice]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stamp(obj: dict[str, Any], ctx: CallContext, provider: str) -> dict[str, Any]:
    """Put tollway's id, model, provider and timestamps on a translated ``chat.completion``."""
    obj["id"] = ctx.generation_id
    obj["model"] = ctx.model_id
    obj["provider"] = provider
    obj["created"] = ctx.created
    obj["system_fingerprint"] = None
    return obj
