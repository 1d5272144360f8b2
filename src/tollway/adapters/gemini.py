"""The Gemini API wire format (``generateContent`` and ``streamGenerateContent``).

``base_url`` is the API root as Google's SDK takes it (``https://generativelanguage.googleapis.com``);
the adapter appends ``/v1beta/models/{model}:generateContent`` (or
``:streamGenerateContent?alt=sse``, ``:batchEmbedContents``) and authenticates with
``x-goog-api-key``.  Translation lives in :mod:`tollway.adapters.gemini_mapping`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from tollway.adapters.base import (
    CallContext,
    Completion,
    EmbeddingResult,
    MidStreamError,
    StreamState,
    Target,
    stream_broke,
    stream_truncated,
    upstream_text,
)
from tollway.adapters.chunks import chunk_event, stamp
from tollway.adapters.gemini_mapping import (
    candidate_of,
    finish_of,
    parts_of,
    signature_detail,
    to_gemini_request,
    to_openai_completion,
    tool_call,
    usage_from_gemini,
)
from tollway.adapters.http import ensure_event_stream, error_from_response, post_json
from tollway.adapters.sse import iter_events
from tollway.errors import BadRequest, UpstreamError
from tollway.json_body import dumps_tight
from tollway.metering import Usage, estimate_tokens_from_bytes


def _label(target: Target) -> str:
    return target.provider.display_name or target.provider.name


def _model_path(target: Target) -> str:
    model = target.endpoint.model
    return model if model.startswith(("models/", "tunedModels/")) else "models/" + model


class GeminiAdapter:
    kind = "gemini"

    def url(self, target: Target, method: str) -> str:
        return f"{target.provider.base_url}/v1beta/{_model_path(target)}:{method}"

    def headers(self, target: Target, ctx: CallContext) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **target.provider.headers, **ctx.extra_headers}
        if target.provider.api_key is not None:
            headers["x-goog-api-key"] = target.provider.api_key.get_secret_value()
        return headers

    async def complete(self, target: Target, body: dict[str, Any], ctx: CallContext) -> Completion:
        obj = await self._post(target, "generateContent", to_gemini_request(target, body), ctx)
        if not isinstance(obj.get("candidates"), list) and not isinstance(obj.get("promptFeedback"), dict):
            raise UpstreamError(f"provider {target.provider.name} returned a body that is not a "
                                "GenerateContentResponse", provider=target.provider.name,
                                raw=orjson.dumps(obj)[:2048].decode("utf-8", "replace"))
        completion, native = to_openai_completion(obj, ctx.generation_id)
        payload = stamp(completion, ctx, _label(target))
        return Completion(payload=payload, usage=usage_from_gemini(obj.get("usageMetadata")),
                          finish_reason=payload["choices"][0]["finish_reason"],
                          native_finish_reason=upstream_text("native_finish_reason", native),
                          upstream_id=upstream_text("upstream_id", obj.get("responseId")))

    async def stream(self, target: Target, body: dict[str, Any], ctx: CallContext,
                     state: StreamState) -> AsyncIterator[bytes]:
        provider = target.provider.name
        label = _label(target)
        request = dumps_tight(to_gemini_request(target, body))
        calls = 0
        finished = False
        started = asyncio.get_running_loop().time()
        try:
            async with ctx.session.post(self.url(target, "streamGenerateContent") + "?alt=sse", data=request,
                                        headers=self.headers(target, ctx),
                                        timeout=ctx.timeouts.stream) as resp:
                await ensure_event_stream(resp, provider)
                async for batch in iter_events(resp, ctx.timeouts, started):
                    state.mark_first_byte()
                    out: list[bytes] = []
                    for event in batch:
                        try:
                            obj = orjson.loads(event.data)
                        except orjson.JSONDecodeError:
                            continue
                        if not isinstance(obj, dict):
                            continue
                        if "error" in obj:
                            if state.relayed or out:
                                err = obj["error"]
                                message = err.get("message") if isinstance(err, dict) else err
                                raise MidStreamError(f"provider error mid-stream: {message}", provider=provider)
                            raise error_from_response(502, event.data, provider)
                        if not state.relayed and not out:
                            out.append(chunk_event(ctx, label, {"role": "assistant", "content": ""}))
                            if isinstance(obj.get("responseId"), str):
                                state.upstream_id = upstream_text("upstream_id", obj["responseId"])
                        usage = usage_from_gemini(obj.get("usageMetadata"))
                        if usage is not None:
                            state.usage = usage  # cumulative: the last report wins
                        candidate = candidate_of(obj)
                        for part in parts_of(candidate):
                            if isinstance(part.get("functionCall"), dict):
                                call = {"index": calls, **tool_call(part, calls, ctx.generation_id)}
                                calls += 1
                                state.text_bytes += len(call["function"]["arguments"])
                                signed = signature_detail(part, call["id"])
                                delta: dict[str, Any] = {"tool_calls": [call]}
                                if signed is not None:
                                    delta["reasoning_details"] = [signed]
                                out.append(chunk_event(ctx, label, delta))
                                continue
                            signed = signature_detail(part, None)
                            if signed is not None:
                                out.append(chunk_event(ctx, label, {"reasoning_details": [signed]}))
                            if isinstance(part.get("text"), str) and part["text"]:
                                state.text_bytes += len(part["text"].encode("utf-8", "replace"))
                                field = "reasoning" if part.get("thought") is True else "content"
                                out.append(chunk_event(ctx, label, {field: part["text"]}))
                        native = candidate.get("finishReason")
                        if native is None and isinstance(obj.get("promptFeedback"), dict) \
                                and obj["promptFeedback"].get("blockReason"):
                            native = "SAFETY"
                        finish = finish_of(native if isinstance(native, str) else None, calls > 0)
                        if finish is not None:
                            finished = True
                            state.finish_reason = finish
                            state.native_finish_reason = upstream_text("native_finish_reason", native)
                            out.append(chunk_event(ctx, label, {}, finish_reason=finish,
                                                   native_finish_reason=native))
                        # Counts before the finishing chunk are not the output's final count.
                        state.usage_partial = state.usage is not None and not finished
                    if out:
                        data = b"".join(out)
                        state.relayed.append(data)
                        yield data
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise stream_broke(exc, provider, bool(state.relayed)) from exc
        if not finished:
            raise stream_truncated(provider, bool(state.relayed))

    async def embed(self, target: Target, body: dict[str, Any], ctx: CallContext) -> EmbeddingResult:
        """``batchEmbedContents``; Gemini reports no token counts, so they are estimated."""
        texts = body.get("input")
        items = [texts] if isinstance(texts, str) else texts
        if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
            raise BadRequest("Gemini embeddings take 'input' as a string or a list of strings", code=400)
        model = _model_path(target)
        request: dict[str, Any] = {"requests": [{"model": model, "content": {"parts": [{"text": t}]}}
                                                for t in items]}
        if isinstance(body.get("dimensions"), int):
            for item in request["requests"]:
                item["outputDimensionality"] = body["dimensions"]
        obj = await self._post(target, "batchEmbedContents", request, ctx)
        embeddings = obj.get("embeddings")
        if not isinstance(embeddings, list):
            raise UpstreamError(f"provider {target.provider.name} returned no embeddings",
                                provider=target.provider.name)
        data = [{"object": "embedding", "index": i, "embedding": e.get("values", []) if isinstance(e, dict) else []}
                for i, e in enumerate(embeddings)]
        tokens = sum(estimate_tokens_from_bytes(len(t.encode("utf-8", "replace"))) for t in items)
        payload = {"object": "list", "data": data, "model": ctx.model_id, "provider": _label(target)}
        return EmbeddingResult(payload=payload, usage=Usage(prompt_tokens=tokens, estimated=True))

    async def _post(self, target: Target, method: str, request: dict[str, Any],
                    ctx: CallContext) -> dict[str, Any]:
        provider = target.provider.name
        obj, raw, status = await post_json(ctx.session, self.url(target, method), dumps_tight(request),
                                   self.headers(target, ctx), ctx.timeouts.complete, provider)
        if not isinstance(obj, dict):
            raise UpstreamError(f"provider {provider} returned a body that is not JSON", provider=provider,
                                upstream_status=status, raw=raw[:2048].decode("utf-8", "replace"))
        if "error" in obj:
            raise error_from_response(502, raw, provider)
        return obj
