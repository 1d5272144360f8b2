"""Pass-through to a provider flagged ``responses: native`` (``POST {base_url}/responses``).

The client's body is forwarded with the upstream's model name, the whole conversation as
``input`` (tollway resolves ``previous_response_id`` itself, so the upstream is asked not
to store) and no gateway-only fields; built-in tools go along, since such an upstream can
run them.  The answer comes back with tollway's response id and model; in a stream only
the events that carry the ``response`` object are rewritten, every other event is relayed
as it came (its ``sequence_number`` kept).
"""

from __future__ import annotations

import asyncio
import itertools
import operator
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

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
from tollway.adapters.http import ensure_event_stream, error_from_response, post_json
from tollway.adapters.openai import GATEWAY_ONLY_FIELDS
from tollway.adapters.sse import iter_blocks, parse_block
from tollway.config import ProviderConfig
from tollway.errors import UpstreamError
from tollway.json_body import encode_body
from tollway.metering import Usage
from tollway.responses.request import ResponsesRequest, decode_reasoning

_FINAL_EVENTS = ("response.completed", "response.incomplete")
# Events relayed as they came, never parsed: none of them carries the ``response`` object
# (whose id and model are rewritten, and whose usage is metered) or an error.
_UNPARSED = tuple(b"event: response." + kind for kind in (
    b"output_text.", b"output_item.", b"content_part.", b"function_call_arguments.", b"custom_tool_call_input.",
    b"reasoning_summary_text.", b"reasoning_summary_part.", b"reasoning_text.", b"refusal."))


def _sequence(block: bytes | None) -> int:
    """The ``sequence_number`` of a relayed event block; -1 when there is none."""
    event = parse_block(block) if block is not None else None
    try:
        obj = orjson.loads(event.data) if event is not None else None
    except orjson.JSONDecodeError:
        return -1
    number = obj.get("sequence_number") if isinstance(obj, dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) else -1


def native_provider(provider: ProviderConfig) -> bool:
    return provider.responses == "native"


def is_native(target: Target) -> bool:
    return native_provider(target.provider)


def usage_from_responses(usage: Any) -> Usage | None:
    """A Responses ``usage`` object in tollway's (OpenAI chat) convention."""
    if not isinstance(usage, dict):
        return None
    return Usage.from_openai({
        "prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens"),
        "prompt_tokens_details": usage.get("input_tokens_details"),
        "completion_tokens_details": usage.get("output_tokens_details")})


def finish_of(response: dict[str, Any]) -> str:
    """A chat-style finish reason for the ledger, read from a ``response``."""
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return "content_filter" if reason == "content_filter" else "length"
    output = response.get("output")
    calls = any(isinstance(i, dict) and str(i.get("type", "")).endswith("call") for i in output or ()) \
        if isinstance(output, list) else False
    return "tool_calls" if calls else "stop"


def native_body(request: ResponsesRequest, target: Target, stream: bool) -> bytes:
    body = {k: v for k, v in request.body.items()
            if k not in GATEWAY_ONLY_FIELDS and k != "previous_response_id"}
    # tollway's own encrypted reasoning (another provider's signatures) means nothing here;
    # a conversation of plain messages has no reasoning item to look for, and items read raw
    # hold none (:mod:`tollway.responses.passthrough`; they go as the JSON they were).
    body["input"] = request.items_raw if request.items_raw is not None \
        else request.items if request.plain else [
        item for item in request.items
        if not (item.get("type") == "reasoning" and decode_reasoning(item.get("encrypted_content")))]
    body["model"] = target.endpoint.model
    body["store"] = False
    body["stream"] = stream
    return encode_body(body)


def _headers(target: Target) -> dict[str, str]:
    headers = {"Content-Type": "application/json", **target.provider.headers}
    if target.provider.api_key is not None:
        headers["Authorization"] = "Bearer " + target.provider.api_key.get_secret_value()
    return headers


def _stamp(response: dict[str, Any], ctx: CallContext) -> None:
    response["id"] = ctx.generation_id
    response["model"] = ctx.model_id


class NativeRelay:
    """One call to a Responses-native upstream; ``final`` is the finished response."""

    def __init__(self, request: ResponsesRequest) -> None:
        self.request = request
        self.final: dict[str, Any] | None = None
        # The last event block relayed: its sequence_number (read only if the stream breaks)
        # numbers the error event that ends the stream.
        self.last: bytes | None = None

    def failed(self, message: str) -> bytes:
        """An ``error`` event, next in the upstream's sequence: the stream broke mid-way."""
        event = {"type": "error", "code": "server_error", "message": message, "param": None,
                 "sequence_number": _sequence(self.last) + 1}
        return b"event: error\ndata: " + orjson.dumps(event) + b"\n\n"

    def url(self, target: Target) -> str:
        return target.provider.base_url + "/responses"

    async def complete(self, target: Target, ctx: CallContext) -> Completion:
        provider = target.provider.name
        obj, raw, status = await post_json(ctx.session, self.url(target), native_body(self.request, target, False),
                                           _headers(target), ctx.timeouts.complete, provider)
        if not isinstance(obj, dict) or obj.get("object") != "response":
            if isinstance(obj, dict) and "error" in obj:
                raise error_from_response(502, raw, provider)
            raise UpstreamError(f"provider {provider} returned a body that is not a Responses response",
                                provider=provider, upstream_status=status,
                                raw=raw[:2048].decode("utf-8", "replace"))
        upstream_id = upstream_text("upstream_id", obj.get("id"))
        _stamp(obj, ctx)
        self.final = obj
        finish = finish_of(obj)
        return Completion(payload=obj, usage=usage_from_responses(obj.get("usage")), finish_reason=finish,
                          native_finish_reason=upstream_text("native_finish_reason", str(obj.get("status"))),
                          upstream_id=upstream_id)

    async def stream(self, target: Target, ctx: CallContext, state: StreamState) -> AsyncIterator[bytes]:
        """The upstream's events, relayed.  Content events (text and argument deltas, parts,
        items: the bulk of a stream, and none carries the ``response`` object) pass in runs
        as bytes, found in C (one ``startswith`` per block); only the others are parsed."""
        provider = target.provider.name
        finished = False
        started = asyncio.get_running_loop().time()
        try:
            async with ctx.session.post(self.url(target), data=native_body(self.request, target, True),
                                        headers=_headers(target), timeout=ctx.timeouts.stream) as resp:
                await ensure_event_stream(resp, provider)
                async for blocks in iter_blocks(resp, ctx.timeouts, started):
                    state.mark_first_byte()
                    out: list[bytes] = []
                    after = 0  # the first block not yet relayed
                    unparsed = map(bytes.startswith, blocks, itertools.repeat(_UNPARSED))
                    for at in itertools.compress(range(len(blocks)), map(operator.not_, unparsed)):
                        out += blocks[after:at]
                        after = at + 1
                        event = parse_block(blocks[at])
                        if event is not None:
                            out.append(self._event(event.name, event.data, blocks[at], ctx, state, provider))
                            finished = finished or state.finish_reason is not None
                    out += blocks[after:] if after else blocks
                    if out:
                        self.last = out[-1]
                        out.append(b"")  # the last block's terminator
                        data = b"\n\n".join(out)
                        state.relayed.append(b"")  # marks "bytes reached the client"
                        state.text_bytes += len(data) // 4  # a rough basis if no usage ever comes
                        yield data
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise stream_broke(exc, provider, bool(state.relayed)) from exc
        if not finished:
            raise stream_truncated(provider, bool(state.relayed))

    def _event(self, name: str | None, data: bytes, raw: bytes, ctx: CallContext, state: StreamState,
               provider: str) -> bytes:
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            return raw
        if not isinstance(obj, dict):
            return raw
        kind = obj.get("type") or name
        if kind == "error":
            message = obj.get("message") or data[:200].decode("utf-8", "replace")
            if state.relayed:
                raise MidStreamError(f"provider error mid-stream: {message}", provider=provider)
            raise error_from_response(502, data, provider)
        response = obj.get("response")
        if not isinstance(response, dict):
            return raw
        if isinstance(response.get("id"), str) and state.upstream_id is None:
            state.upstream_id = upstream_text("upstream_id", response["id"])
        _stamp(response, ctx)
        if kind in _FINAL_EVENTS:
            state.usage = usage_from_responses(response.get("usage"))
            state.finish_reason = finish_of(response)
            state.native_finish_reason = upstream_text("native_finish_reason", str(response.get("status")))
            self.final = response
        elif kind == "response.failed":
            state.finish_reason = "error"
            state.native_finish_reason = "failed"
        return b"event: " + str(kind).encode() + b"\ndata: " + orjson.dumps(obj)
