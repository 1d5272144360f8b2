"""The OpenAI chat-completions wire format.

It also serves every OpenAI-compatible vendor (DeepSeek, Moonshot, Zhipu, MiniMax,
DashScope, Together, Fireworks, Groq, vLLM, SGLang, Ollama, llama.cpp...): those are
catalog rows with ``kind: openai`` and a ``base_url``, never code.

Streams are relayed with as little work per chunk as correctness allows: the first
event is parsed to learn how the upstream spells its id and model, after which ordinary
content chunks are rewritten with byte replacements; only events that carry a finish
reason, usage or an error are parsed.  If the spelling can't be learned, every event is
parsed (same output, slower).
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
from tollway.adapters.http import WatchedReads, ensure_event_stream, error_from_response, post_json
from tollway.errors import UpstreamError
from tollway.json_body import dumps_tight
from tollway.metering import Usage

# Request fields that belong to OpenRouter/tollway, not to the OpenAI wire format: an
# upstream such as OpenAI itself rejects unknown parameters.
GATEWAY_ONLY_FIELDS = frozenset({
    "provider", "models", "route", "transforms", "plugins", "session_id", "usage", "preset",
    "debug", "trace", "x_open_router_metadata", "prompt_cache_options",
})

# Events that need parsing rather than a byte rewrite: a finish reason (spelling learned
# from the first chunk), an error, the usage chunk and [DONE].  All of them close a stream,
# so they sit in the last bytes of whatever block they arrive in: only that tail is
# scanned.  (A finish reason earlier in a block, e.g. choice 0 of n=2 finishing first, is
# forwarded byte for byte, which is correct; only its capture for the ledger is skipped.)
_FINISH_MARKS = (b'"finish_reason":"', b'"finish_reason": "')
_CLOSING_MARKS = (b'"error"', b'"usage"', b"[DONE]")
_TAIL_BYTES = 4096


def build_upstream_body(target: Target, body: dict[str, Any], stream: bool) -> bytes:
    """The request as the upstream expects it: its model name, no gateway-only fields."""
    out = {k: v for k, v in body.items() if k not in GATEWAY_ONLY_FIELDS}
    out["model"] = target.endpoint.model
    if stream:
        options = out.get("stream_options")
        out["stream_options"] = {**options, "include_usage": True} if isinstance(options, dict) \
            else {"include_usage": True}
    else:
        out.pop("stream_options", None)
    return dumps_tight(out)


def _headers(target: Target) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **target.provider.headers}
    if target.provider.api_key is not None:
        headers["Authorization"] = "Bearer " + target.provider.api_key.get_secret_value()
    return headers


def provider_label(target: Target) -> str:
    return target.provider.display_name or target.provider.name


def stamp_completion(obj: dict[str, Any], target: Target, ctx: CallContext) -> Completion:
    """Put tollway's id/model/provider on an OpenAI ``chat.completion`` and read its usage."""
    upstream_id = upstream_text("upstream_id", obj.get("id"))
    obj["id"] = ctx.generation_id
    obj["model"] = ctx.model_id
    obj["provider"] = provider_label(target)
    obj["object"] = "chat.completion"
    if not isinstance(obj.get("created"), int):
        obj["created"] = ctx.created
    obj.setdefault("system_fingerprint", None)
    finish = native = None
    for index, choice in enumerate(obj.get("choices") or ()):
        if not isinstance(choice, dict):
            continue
        choice.setdefault("index", index)
        choice.setdefault("logprobs", None)
        message = choice.get("message")
        if isinstance(message, dict):
            message.setdefault("refusal", None)  # required by OpenAI's schema; many vendors omit it
        native = choice.get("native_finish_reason", choice.get("finish_reason"))
        finish = choice.get("finish_reason")
        choice["native_finish_reason"] = native
    return Completion(payload=obj, usage=Usage.from_openai(obj.get("usage")),
                      finish_reason=upstream_text("finish_reason", finish),
                      native_finish_reason=upstream_text("native_finish_reason", native), upstream_id=upstream_id)


class OpenAIAdapter:
    kind = "openai"

    def url(self, target: Target) -> str:
        return target.provider.base_url + "/chat/completions"

    async def complete(self, target: Target, body: dict[str, Any], ctx: CallContext) -> Completion:
        provider = target.provider.name
        payload = build_upstream_body(target, body, stream=False)
        obj, raw, status = await post_json(ctx.session, self.url(target), payload, _headers(target),
                                   ctx.timeouts.complete, provider)
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
            if isinstance(obj, dict) and "error" in obj:
                raise error_from_response(502, raw, provider)
            raise UpstreamError(f"provider {provider} returned a body that is not a chat completion",
                                provider=provider, upstream_status=status,
                                raw=raw[:2048].decode("utf-8", "replace"))
        return stamp_completion(obj, target, ctx)

    async def embed(self, target: Target, body: dict[str, Any], ctx: CallContext) -> EmbeddingResult:
        """``POST {base_url}/embeddings``: the body forwarded with the upstream's model name."""
        provider = target.provider.name
        payload = dumps_tight({**{k: v for k, v in body.items() if k not in GATEWAY_ONLY_FIELDS},
                                "model": target.endpoint.model})
        obj, raw, status = await post_json(ctx.session, target.provider.base_url + "/embeddings", payload,
                                   _headers(target), ctx.timeouts.complete, provider)
        if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
            raise UpstreamError(f"provider {provider} returned a body that is not an embeddings list",
                                provider=provider, upstream_status=status,
                                raw=raw[:2048].decode("utf-8", "replace"))
        obj["model"] = ctx.model_id
        obj["provider"] = provider_label(target)
        return EmbeddingResult(payload=obj, usage=Usage.from_openai(obj.get("usage")))

    async def stream(self, target: Target, body: dict[str, Any], ctx: CallContext,
                     state: StreamState) -> AsyncIterator[bytes]:
        provider = target.provider.name
        payload = build_upstream_body(target, body, stream=True)
        relay = _ChunkRelay(ctx, provider_label(target), state)
        yielded = False
        reads: WatchedReads | None = None
        started = asyncio.get_running_loop().time()
        try:
            async with ctx.session.post(self.url(target), data=payload, headers=_headers(target),
                                        timeout=ctx.timeouts.stream) as resp:
                await ensure_event_stream(resp, provider)
                buffer = b""
                reads = WatchedReads(resp, ctx.timeouts, started)
                async for data in reads:
                    state.mark_first_byte()
                    buffer = buffer + data if buffer else data
                    cut = buffer.rfind(b"\n\n")
                    if cut < 0:
                        if b"\r\n\r\n" in buffer:
                            buffer = buffer.replace(b"\r\n", b"\n")
                            cut = buffer.rfind(b"\n\n")
                        if cut < 0:
                            continue
                    block, buffer = buffer[: cut + 2], buffer[cut + 2:]
                    out = relay.process(block)
                    if out:
                        yielded = True
                        yield out
                    if relay.done:
                        break
                if buffer.strip():
                    out = relay.process(buffer + b"\n\n")
                    if out:
                        yielded = True
                        yield out
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise stream_broke(exc, provider, yielded) from exc
        except _UpstreamStreamError as exc:
            if yielded:
                raise MidStreamError(exc.message, provider=provider) from None
            raise error_from_response(502, exc.raw, provider) from None
        finally:
            if reads is not None:
                reads.close()
        if not relay.done and not relay.finished:
            # The upstream closed without [DONE] or a finish reason: a truncated stream.
            raise stream_truncated(provider, yielded)


class _UpstreamStreamError(Exception):
    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.message = message
        self.raw = raw


class _ChunkRelay:
    """Rewrites OpenAI SSE events for the client and captures what metering needs."""

    def __init__(self, ctx: CallContext, provider: str, state: StreamState) -> None:
        self.ctx = ctx
        self.provider = provider
        self.state = state
        self.done = False  # saw [DONE]
        self.finished = False  # saw a finish_reason
        self.learned = False
        self.fast = False
        self.replacements: list[tuple[bytes, bytes]] = []
        self.id_pattern = b""  # an event without the learned id spelling takes the slow path
        self.finish_mark = _FINISH_MARKS[0]

    def process(self, block: bytes) -> bytes:
        """Turn a run of complete upstream events into client bytes.

        Fast path: the events before the first one that needs parsing (a finish reason, an
        error, the usage chunk or [DONE], looked for in the block's tail) are rewritten as
        one block with two byte replacements; everything from that event on goes event by
        event.  Per relayed byte, the two replacements are the whole of tollway's work on
        an ordinary content chunk.  An event that
        lacks the learned id spelling (no OpenAI-compatible server varies it) or is a
        comment passes through unchanged, which SSE clients accept.
        """
        out: list[bytes] = []
        rest = block
        while not self.learned and rest and not self.done:
            # Parse events one at a time until the first chunk has taught us the spelling.
            end = rest.find(b"\n\n") + 2
            self._events(rest[:end], out)
            rest = rest[end:]
        if self.fast and not self.finished and rest.startswith(b"data:"):
            cut = self._special_at(rest)
            if cut < 0:
                out.append(self._rewrite_block(rest))
                rest = b""
            else:
                start = rest.rfind(b"\n\n", 0, cut) + 2
                if start > 1:
                    out.append(self._rewrite_block(rest[:start]))
                    rest = rest[start:]
        if rest:
            self._events(rest, out)
        if out:
            self.state.relayed.extend(out)
        return b"".join(out)

    def _special_at(self, data: bytes) -> int:
        """Offset of the first mark of an event that needs parsing in ``data``'s tail, or -1."""
        tail = max(0, len(data) - _TAIL_BYTES)
        first = data.find(self.finish_mark, tail)
        for mark in _CLOSING_MARKS:
            at = data.find(mark, tail)
            if at >= 0 and (first < 0 or at < first):
                first = at
        return first

    def _events(self, block: bytes, out: list[bytes]) -> None:
        for event in block.split(b"\n\n"):
            if not event:
                continue
            if not event.startswith(b"data:"):
                # Comments (": keep-alive") and event:/id: lines carry nothing for OpenAI.
                data_at = event.find(b"\ndata:")
                if data_at < 0:
                    continue
                event = event[data_at + 1:]
            if self.fast and not self.finished and self.id_pattern in event and self._special_at(event) < 0:
                out.append(self._rewrite_block(event + b"\n\n"))
                continue
            handled = self._slow(event)
            if handled:
                out.append(handled)
            if self.done:
                break

    def _rewrite_block(self, data: bytes) -> bytes:
        for old, new in self.replacements:
            data = data.replace(old, new)
        return data

    def _slow(self, event: bytes) -> bytes | None:
        payload = event[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return None
        try:
            obj = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return None  # a malformed line is dropped, not fatal
        if not isinstance(obj, dict):
            return None
        if "error" in obj and not obj.get("choices"):
            err = obj["error"]
            message = err.get("message") if isinstance(err, dict) else str(err)
            raise _UpstreamStreamError(f"provider error mid-stream: {message}", payload)
        if not self.learned:
            self._learn(obj, event)
        usage = Usage.from_openai(obj.get("usage"))
        if usage is not None:
            self.state.usage = usage  # cumulative: the last report replaces earlier ones
        choices = obj.get("choices")
        for choice in choices or ():
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.finished = True
                self.state.finish_reason = upstream_text("finish_reason", choice["finish_reason"]) or "stop"
                self.state.native_finish_reason = upstream_text(
                    "native_finish_reason", choice.get("native_finish_reason", choice["finish_reason"]))
                choice.setdefault("native_finish_reason", choice["finish_reason"])
        if not choices:
            return None  # the usage-only chunk: tollway emits its own, with cost, at the end
        if self.ctx.translated:
            # Spelt as the upstream spells its other chunks, so the writer's byte templates
            # (TextDeltaRuns) recognise them all alike; usage is read from the state, not here.
            return event + b"\n\n"
        obj.pop("usage", None)
        obj["id"] = self.ctx.generation_id
        obj["model"] = self.ctx.model_id
        obj["provider"] = self.provider
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    def _learn(self, obj: dict[str, Any], event: bytes) -> None:
        """Find how the upstream spells id and model, so later chunks need no parsing."""
        self.learned = True
        upstream_id, model = obj.get("id"), obj.get("model")
        if isinstance(upstream_id, str):
            self.state.upstream_id = upstream_text("upstream_id", upstream_id)
        if not isinstance(upstream_id, str) or not isinstance(model, str):
            return
        new_id = b'"id":' + orjson.dumps(self.ctx.generation_id)
        new_model = (b'"model":' + orjson.dumps(self.ctx.model_id) + b',"provider":'
                     + orjson.dumps(self.provider))
        found: list[tuple[bytes, bytes]] = []
        for key, value, new in ((b'"id"', upstream_id, new_id), (b'"model"', model, new_model)):
            encoded = orjson.dumps(value)
            for sep in (b":", b": "):
                pattern = key + sep + encoded
                if pattern in event:
                    found.append((pattern, new))
                    break
            else:
                return
        if b'"provider"' in event:
            return  # the upstream already sends a provider field; keep the slow path exact
        # A translated stream's chunks never reach the client as they are: nothing to rewrite.
        self.replacements = [] if self.ctx.translated else found
        self.id_pattern = found[0][0]
        # The first chunk spells "finish_reason": null; a real finish is spelled the same way.
        self.finish_mark = _FINISH_MARKS[1] if b'"finish_reason": ' in event else _FINISH_MARKS[0]
        self.fast = True
