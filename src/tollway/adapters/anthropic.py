"""The Anthropic Messages wire format (``POST {base_url}/v1/messages``).

Serves Anthropic itself and every vendor with an Anthropic-compatible root (MiniMax's or
DeepSeek's ``/anthropic``): those are catalog rows with ``kind: anthropic``.

Two ways in:

* ``complete()`` / ``stream()``: the adapter contract, OpenAI chat in and out, translated
  with :mod:`tollway.adapters.anthropic_mapping`.
* ``passthrough_complete()`` / ``passthrough_stream()``: for the ``/v1/messages`` ingress,
  an Anthropic body forwarded with only the model name swapped, and the upstream's events
  relayed as they are (only ``message_start`` and ``message_delta`` are parsed, for ids
  and usage): no double translation.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiohttp
import orjson

from tollway.adapters.anthropic_mapping import (
    ANTHROPIC_VERSION,
    STOP_TO_FINISH,
    THINKING_FORMAT,
    to_anthropic_request,
    to_openai_completion,
    usage_from_anthropic,
)
from tollway.adapters.base import (
    CallContext,
    Completion,
    MidStreamError,
    StreamState,
    Target,
    stream_broke,
    stream_truncated,
    upstream_text,
)
from tollway.adapters.chunks import chunk_event, stamp
from tollway.adapters.http import ensure_event_stream, error_from_response, post_json
from tollway.adapters.sse import SSEEvent, iter_blocks, parse_block
from tollway.errors import UpstreamError
from tollway.json_body import encode_body

# The Messages API's own error types -> the HTTP status Anthropic would have answered with.
_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                 "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429,
                 "api_error": 500, "overloaded_error": 529}


def _label(target: Target) -> str:
    return target.provider.display_name or target.provider.name


class AnthropicAdapter:
    kind = "anthropic"

    def url(self, target: Target) -> str:
        return target.provider.base_url + "/v1/messages"

    def headers(self, target: Target, ctx: CallContext) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION,
                   **target.provider.headers, **ctx.extra_headers}
        if target.provider.api_key is not None:
            headers["x-api-key"] = target.provider.api_key.get_secret_value()
        return headers

    # -- the adapter contract: OpenAI chat in and out -----------------------------------------

    async def complete(self, target: Target, body: dict[str, Any], ctx: CallContext) -> Completion:
        obj = await self._post(target, to_anthropic_request(target, body, stream=False), ctx)
        payload = stamp(to_openai_completion(obj), ctx, _label(target))
        choice = payload["choices"][0]
        usage = usage_from_anthropic(obj.get("usage"))
        return Completion(payload=payload, usage=usage, finish_reason=choice["finish_reason"],
                          native_finish_reason=choice["native_finish_reason"],
                          upstream_id=upstream_text("upstream_id", obj.get("id")))

    async def stream(self, target: Target, body: dict[str, Any], ctx: CallContext,
                     state: StreamState) -> AsyncIterator[bytes]:
        translator = _StreamTranslator(ctx, _label(target), state, target.provider.name)
        request = to_anthropic_request(target, body, stream=True)
        async for batch in self._events(target, request, ctx, state):
            out = b"".join(translator.event(e) for e in batch)
            if out:
                state.relayed.append(out)
                yield out
        if not translator.stopped and state.finish_reason is None:
            raise stream_truncated(target.provider.name, bool(state.relayed))

    # -- the /v1/messages pass-through ----------------------------------------------------------

    async def passthrough_complete(self, target: Target, body: dict[str, Any],
                                   ctx: CallContext, query: str = "") -> Completion:
        """An Anthropic request forwarded as is (model swapped, the client's query string
        such as ``?beta=true`` kept); the Anthropic message back."""
        request = {**body, "model": target.endpoint.model}
        request.pop("stream", None)
        obj = await self._post(target, request, ctx, query)
        upstream_id = upstream_text("upstream_id", obj.get("id"))
        obj["id"] = ctx.generation_id
        obj["model"] = ctx.model_id
        stop = obj.get("stop_reason") if isinstance(obj.get("stop_reason"), str) else None
        return Completion(payload=obj, usage=usage_from_anthropic(obj.get("usage")),
                          finish_reason=STOP_TO_FINISH.get(stop, "stop") if stop else None,
                          native_finish_reason=upstream_text("native_finish_reason", stop), upstream_id=upstream_id)

    async def passthrough_stream(self, target: Target, body: dict[str, Any], ctx: CallContext,
                                 state: StreamState, query: str = "") -> AsyncGenerator[bytes, None]:
        """The upstream's Anthropic events, relayed; usage and stop reason captured on ``state``.

        Content events, the bulk of a stream, are relayed as bytes without parsing; only
        ``message_start`` (ids rewritten), ``message_delta`` (usage, stop reason),
        ``message_stop`` and ``error`` are read.
        """
        request = {**body, "model": target.endpoint.model, "stream": True}
        usage: dict[str, Any] = {}
        stopped = False
        # Content deltas, the bulk of a stream, are relayed without being parsed: their text is
        # counted (what a cut stream is billed by when no usage arrives) only if it is needed.
        state.count_uncounted = _deltas_bytes
        uncounted = state.uncounted
        async for blocks in self._blocks(target, request, ctx, state, query):
            out: list[bytes] = []
            # Content events pass in runs (found in C: one startswith per block); only the
            # others are looked at one by one.  Every content event joins ``uncounted``
            # (those that are no delta count 0 there).
            unparsed = list(map(bytes.startswith, blocks, itertools.repeat(_UNPARSED)))
            after = 0  # the first block not yet relayed
            for at in itertools.compress(range(len(blocks)), map(operator.not_, unparsed)):
                if at > after:
                    run = blocks[after:at]
                    out += run
                    uncounted += run
                after = at + 1
                block = blocks[at]
                event = parse_block(block)
                if event is None:
                    continue
                if event.name == "message_start":
                    obj = _json(event)
                    message = _obj(obj.get("message"))
                    if isinstance(message.get("id"), str):
                        state.upstream_id = upstream_text("upstream_id", message["id"])
                    message["id"], message["model"] = ctx.generation_id, ctx.model_id
                    _merge_usage(usage, message.get("usage"), state, final=False)
                    out.append(b"event: message_start\ndata: " + orjson.dumps(obj))
                    continue
                if event.name == "message_delta":
                    obj = _json(event)
                    _merge_usage(usage, obj.get("usage"), state, final=True)
                    delta = _obj(obj.get("delta"))
                    stop = delta.get("stop_reason")
                    if isinstance(stop, str):
                        state.native_finish_reason = upstream_text("native_finish_reason", stop)
                        state.finish_reason = STOP_TO_FINISH.get(stop, "stop")
                elif event.name == "content_block_delta":
                    uncounted.append(block)  # billed by it if the stream is cut
                elif event.name == "message_stop":
                    stopped = True
                elif event.name == "error":
                    raise _stream_error(event, target.provider.name, bool(state.relayed) or bool(out))
                out.append(block)
            if after < len(blocks):
                run = blocks[after:] if after else blocks
                out += run
                uncounted += run
            if out:
                out.append(b"")  # the last block's terminator
                state.relayed.append(b"")  # marks "bytes reached the client"; text counted above
                yield b"\n\n".join(out)
        if not stopped:
            raise stream_truncated(target.provider.name, bool(state.relayed))

    async def count_tokens(self, target: Target, body: dict[str, Any], ctx: CallContext,
                           query: str = "") -> int:
        """The upstream's ``/v1/messages/count_tokens`` for an Anthropic body (model swapped)."""
        provider = target.provider.name
        request = {k: v for k, v in body.items() if k not in _NOT_COUNTED}
        request["model"] = target.endpoint.model
        url = self.url(target) + "/count_tokens" + (f"?{query}" if query else "")
        obj, raw, status = await post_json(ctx.session, url, encode_body(request),
                                           self.headers(target, ctx), ctx.timeouts.complete, provider)
        count = obj.get("input_tokens") if isinstance(obj, dict) else None
        if not isinstance(count, int) or isinstance(count, bool):
            if isinstance(obj, dict) and obj.get("type") == "error":
                raise error_from_response(_error_status(obj), raw, provider)
            raise UpstreamError(f"provider {provider} returned no token count", provider=provider,
                                upstream_status=status, raw=raw[:2048].decode("utf-8", "replace"))
        return count

    # -- HTTP ------------------------------------------------------------------------------------

    async def _post(self, target: Target, request: dict[str, Any], ctx: CallContext,
                    query: str = "") -> dict[str, Any]:
        provider = target.provider.name
        url = self.url(target) + (f"?{query}" if query else "")
        obj, raw, status = await post_json(ctx.session, url, encode_body(request),
                                   self.headers(target, ctx), ctx.timeouts.complete, provider)
        if not isinstance(obj, dict) or obj.get("type") != "message":
            if isinstance(obj, dict) and obj.get("type") == "error":
                raise error_from_response(_error_status(obj), raw, provider)
            raise UpstreamError(f"provider {provider} returned a body that is not an Anthropic message",
                                provider=provider, upstream_status=status,
                                raw=raw[:2048].decode("utf-8", "replace"))
        return obj

    async def _events(self, target: Target, request: dict[str, Any], ctx: CallContext,
                      state: StreamState, query: str = "") -> AsyncIterator[list[SSEEvent]]:
        async for blocks in self._blocks(target, request, ctx, state, query):
            batch = [e for e in map(parse_block, blocks) if e is not None]
            if batch:
                yield batch

    async def _blocks(self, target: Target, request: dict[str, Any], ctx: CallContext,
                      state: StreamState, query: str = "") -> AsyncIterator[list[bytes]]:
        provider = target.provider.name
        url = self.url(target) + (f"?{query}" if query else "")
        started = asyncio.get_running_loop().time()
        try:
            async with ctx.session.post(url, data=encode_body(request),
                                        headers=self.headers(target, ctx),
                                        timeout=ctx.timeouts.stream) as resp:
                await ensure_event_stream(resp, provider)
                async for blocks in iter_blocks(resp, ctx.timeouts, started):
                    state.mark_first_byte()
                    yield blocks
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise stream_broke(exc, provider, bool(state.relayed)) from exc


# Pass-through events relayed without parsing (the named ``event:`` line comes first).
_UNPARSED = (b"event: content_block_", b"event: ping")
# Fields count_tokens does not take (the Messages API rejects them there).
_NOT_COUNTED = frozenset({"max_tokens", "stream", "stop_sequences", "temperature", "top_p", "top_k",
                          "metadata", "service_tier", "container", "models", "provider", "session_id"})


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _json(event: SSEEvent) -> dict[str, Any]:
    try:
        obj = orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _delta_bytes(obj: dict[str, Any]) -> int:
    """UTF-8 bytes of generated text in a content_block_delta (text, tool JSON, thinking)."""
    delta = _obj(obj.get("delta"))
    for name in ("text", "partial_json", "thinking"):
        value = delta.get(name)
        if isinstance(value, str):
            return len(value.encode("utf-8", "replace"))
    return 0


def _deltas_bytes(blocks: list[bytes]) -> int:
    """UTF-8 bytes of the generated text in raw content_block_delta event blocks (other
    events in ``blocks``, having no ``delta``, count 0)."""
    total = 0
    for block in blocks:
        event = parse_block(block)
        if event is not None:
            total += _delta_bytes(_json(event))
    return total


def _error_status(obj: dict[str, Any]) -> int:
    err = obj.get("error")
    kind = err.get("type") if isinstance(err, dict) else None
    return _ERROR_STATUS.get(kind, 502) if isinstance(kind, str) else 502


def _stream_error(event: SSEEvent, provider: str, started: bool) -> Exception:
    obj = _json(event)
    if started:
        err = obj.get("error")
        message = err.get("message") if isinstance(err, dict) else None
        return MidStreamError(f"provider error mid-stream: {message or event.data[:200]!r}",
                              provider=provider)
    # Nothing reached the client: an ordinary upstream error, eligible for failover.
    return error_from_response(_error_status(obj), event.data, provider)


def _merge_usage(usage: dict[str, Any], update: Any, state: StreamState, *, final: bool) -> None:
    """Anthropic's usage is cumulative: message_delta's counts replace message_start's.

    message_start's ``output_tokens`` is a placeholder (1): until a message_delta brings
    the real count, the usage is partial, so a cut stream is billed for its text instead.
    """
    if not isinstance(update, dict):
        return
    for name, value in update.items():
        if value is not None:
            usage[name] = value
    state.usage = usage_from_anthropic(usage)
    state.usage_partial = not final


class _StreamTranslator:
    """Anthropic stream events -> OpenAI chunk events, capturing usage and the stop reason."""

    def __init__(self, ctx: CallContext, label: str, state: StreamState, provider: str) -> None:
        self.ctx = ctx
        self.label = label
        self.state = state
        self.provider = provider
        self.usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool_calls index
        self.stopped = False

    def event(self, event: SSEEvent) -> bytes:
        name = event.name
        if name in {"ping", "content_block_stop"}:
            return b""
        obj = _json(event)
        kind = name or obj.get("type")  # some compatible vendors send data lines only
        if kind == "content_block_delta":
            return self._delta(obj)
        if kind == "message_start":
            message = _obj(obj.get("message"))
            if isinstance(message.get("id"), str):
                self.state.upstream_id = upstream_text("upstream_id", message["id"])
            _merge_usage(self.usage, message.get("usage"), self.state, final=False)
            return chunk_event(self.ctx, self.label, {"role": "assistant", "content": ""})
        if kind == "content_block_start":
            block = _obj(obj.get("content_block"))
            if block.get("type") == "tool_use":
                index = len(self.tool_index)
                self.tool_index[int(obj.get("index", 0))] = index
                return chunk_event(self.ctx, self.label, {"tool_calls": [{
                    "index": index, "id": block.get("id", ""), "type": "function",
                    "function": {"name": block.get("name", ""), "arguments": ""}}]})
            if block.get("type") == "text" and block.get("text"):
                return chunk_event(self.ctx, self.label, {"content": block["text"]})
            if block.get("type") == "redacted_thinking":
                return chunk_event(self.ctx, self.label, {"reasoning_details": [
                    {"type": "reasoning.encrypted", "data": block.get("data"), "format": THINKING_FORMAT}]})
            return b""
        if kind == "message_delta":
            _merge_usage(self.usage, obj.get("usage"), self.state, final=True)
            delta = _obj(obj.get("delta"))
            stop = delta.get("stop_reason")
            if not isinstance(stop, str):
                return b""
            finish = STOP_TO_FINISH.get(stop, "stop")
            self.state.finish_reason = finish
            self.state.native_finish_reason = upstream_text("native_finish_reason", stop)
            return chunk_event(self.ctx, self.label, {}, finish_reason=finish, native_finish_reason=stop)
        if kind == "message_stop":
            self.stopped = True
            return b""
        if kind == "error":
            raise _stream_error(event, self.provider, bool(self.state.relayed))
        return b""

    def _delta(self, obj: dict[str, Any]) -> bytes:
        delta = _obj(obj.get("delta"))
        kind = delta.get("type")
        if kind == "text_delta":
            text = str(delta.get("text", ""))
            self.state.text_bytes += len(text.encode("utf-8", "replace"))
            return chunk_event(self.ctx, self.label, {"content": text})
        if kind == "input_json_delta":
            index = self.tool_index.get(int(obj.get("index", 0)), 0)
            partial = str(delta.get("partial_json", ""))
            self.state.text_bytes += len(partial.encode("utf-8", "replace"))
            return chunk_event(self.ctx, self.label,
                               {"tool_calls": [{"index": index, "function": {"arguments": partial}}]})
        if kind == "thinking_delta":
            thinking = str(delta.get("thinking", ""))
            self.state.text_bytes += len(thinking.encode("utf-8", "replace"))
            return chunk_event(self.ctx, self.label, {"reasoning": thinking, "reasoning_details": [
                {"type": "reasoning.text", "text": thinking, "format": THINKING_FORMAT}]})
        if kind == "signature_delta":
            # OpenRouter's reasoning_details: the signature a later turn must send back.
            return chunk_event(self.ctx, self.label, {"reasoning_details": [
                {"type": "reasoning.text", "signature": str(delta.get("signature", "")),
                 "format": THINKING_FORMAT}]})
        return b""  # citations: nothing OpenAI-shaped to say
