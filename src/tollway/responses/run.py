"""One ``/v1/responses`` call through the gateway's shared run lifecycle and attempt loop.

Routing, stickiness (``prompt_cache_key`` is the session), limits, fallbacks and metering
are the gateway's, exactly as for chat and messages (``api="responses"`` in the ledger);
what is passed in is how to call a target (translated to its wire format, or straight
through when it is Responses-native), how to close a stream (``response.completed`` with
usage and cost) and how to say an error mid-stream (``response.failed``).  Stored
responses are saved before the client sees the end of the response, so a follow-up with
``previous_response_id`` always finds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from tollway.adapters.base import CallContext, Completion, MidStreamError, StreamState, Target
from tollway.auth import Principal
from tollway.errors import BadRequest, NotFound
from tollway.gateway import Closer, Gateway, RequestMeta, _Run, validate_chat_body
from tollway.limits import has_limits
from tollway.limits.capping import RESPONSES_OUTPUT_FIELDS, cap_output
from tollway.metering import Usage
from tollway.responses import store
from tollway.responses.events import ResponseEventWriter
from tollway.responses.native import NativeRelay, is_native
from tollway.responses.output import from_completion, usage_doc
from tollway.responses.request import ResponsesRequest
from tollway.streaming import translate_stream

Sink = ResponseEventWriter | NativeRelay
log = logging.getLogger("tollway.responses")


@dataclass(slots=True)
class ResponsesOutcome:
    """A finished ``response`` or a stream of events; the built-in tools left out upstream."""

    response_id: str
    payload: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None
    dropped_tools: tuple[str, ...] = ()


async def parse_request(gateway: Gateway, principal: Principal, body: dict[str, Any]) -> ResponsesRequest:
    """Validate the body; with ``previous_response_id``, continue the key's stored conversation."""
    history: list[dict[str, Any]] | None = None
    chain: tuple[str, ...] = ()
    previous = body.get("previous_response_id")
    if previous is not None:
        if not isinstance(previous, str) or not previous:
            raise BadRequest("'previous_response_id' must be the id of a stored response", code=400)
        stored = await asyncio.to_thread(store.load, gateway.engine, principal.key_id, previous,
                                         now=gateway.clock())
        if stored is None:
            raise NotFound(f"previous response {previous!r} not found: it was not stored (store: false), "
                           "has expired, or belongs to another key", code=404)
        history, chain = stored.conversation, stored.chain
    return ResponsesRequest.parse(body, history, default_store=gateway.settings.responses.store_default,
                                  chain=chain, translate=_translated_only(gateway, body))


def _translated_only(gateway: Gateway, body: dict[str, Any]) -> bool:
    """Whether every endpoint the request can reach is a translated one (none Responses-native):
    a plain model id, no ``models`` fallbacks, and none of its endpoints' providers native.
    Anything else (fallback lists, aliases) may reach a native endpoint: not translated upfront."""
    name = body.get("model")
    model = gateway.catalog.models.get(name) if isinstance(name, str) and "models" not in body else None
    if model is None:
        return False
    providers = gateway.catalog.providers
    return not any(getattr(providers.get(e.provider), "responses", None) == "native" for e in model.endpoints)


async def create_response(gateway: Gateway, principal: Principal, request: ResponsesRequest,
                          meta: RequestMeta) -> ResponsesOutcome:
    """Route, call, meter and (``store``) keep one response; a stream is returned unstarted."""
    validate_chat_body(request.route, built_messages=True)
    prompt_cache_key = request.body.get("prompt_cache_key")
    if meta.session_id is None and isinstance(prompt_cache_key, str) and prompt_cache_key:
        meta.session_id = prompt_cache_key
    # Routing reads the routing view (no conversation translated); a limited key's reservation
    # bounds the whole prompt, so it reads (and caps the output of) the full chat translation.
    limited = has_limits(principal.key)
    run, targets = await gateway._open_run(principal, request.chat if limited else request.route, meta)
    run.full_body = request.estimate_body  # local token estimates, built only if needed
    if run.hold is not None and run.hold.output_cap is not None:
        # ... and the Responses body, which a native upstream gets.
        cap_output(request.body, run.hold.output_cap, RESPONSES_OUTPUT_FIELDS)
    if request.forced_builtin is not None:
        targets = [t for t in targets if is_native(t)]
        if not targets:
            err = BadRequest(f"tool_choice forces the built-in tool {request.forced_builtin!r}, which no "
                             f"endpoint of {request.route['model']} can run (only providers with "
                             "'responses: native' can); force a function tool or use tool_choice 'auto'",
                             code=400)
            gateway._record_failure(run, err, model=str(request.route["model"]))
            raise err
    outcome = ResponsesOutcome(response_id=run.generation_id)

    def chosen(target: Target) -> None:
        """The attempt's target decides which built-in tools were left out (none if native)."""
        outcome.dropped_tools = () if is_native(target) else request.dropped_tools
        run.meta.extra = {"dropped_tools": list(outcome.dropped_tools)} if outcome.dropped_tools else None

    if request.stream:
        outcome.stream = await _stream(gateway, principal, request, run, targets, chosen)
    else:
        outcome.payload = await _complete(gateway, principal, request, run, targets, chosen)
    return outcome


async def _stream(gateway: Gateway, principal: Principal, request: ResponsesRequest, run: _Run,
                  targets: list[Target], chosen: Callable[[Target], None]) -> AsyncIterator[bytes]:
    created = int(time.time())
    sinks: list[Sink] = []  # the current attempt's writer (or native relay) is the last

    def open_stream(target: Target, ctx: CallContext,
                    state: StreamState) -> tuple[AsyncIterator[bytes], Closer | None]:
        chosen(target)
        if is_native(target):
            relay = NativeRelay(request)
            sinks.append(relay)
            return relay.stream(target, ctx, state), None
        writer = ResponseEventWriter(request, run.generation_id, target.model.id, target.provider.name, created)
        sinks.append(writer)

        def close(usage: Usage, cost: int) -> bytes:
            # After a mid-stream error, response.failed was the end of the stream.
            return b"" if state.finish_reason == "error" else writer.end(usage_doc(usage, cost),
                                                                         state.finish_reason)

        return translate_stream(gateway.adapters[target.provider.kind], target,
                                request.chat_for(target.provider.name), ctx, state, writer), close

    def failed(target: Target, exc: MidStreamError) -> bytes:
        return sinks[-1].failed(exc.message)

    relayed = await gateway._attempt_stream(run, targets, open_stream, failed)
    assert relayed.stream is not None

    if not request.store:
        return relayed.stream  # nothing to keep: no wrapper on the relay's path

    async def save(response: dict[str, Any]) -> None:
        await _save(gateway, principal, request, response)

    return _saving(relayed.stream, sinks, save)


async def _complete(gateway: Gateway, principal: Principal, request: ResponsesRequest, run: _Run,
                    targets: list[Target], chosen: Callable[[Target], None]) -> dict[str, Any]:
    created = int(time.time())

    async def call(target: Target, ctx: CallContext) -> Completion:
        chosen(target)
        if is_native(target):
            return await NativeRelay(request).complete(target, ctx)
        return await gateway.adapters[target.provider.kind].complete(
            target, request.chat_for(target.provider.name), ctx)

    target, completion, usage, cost = await gateway._attempt_complete(run, targets, call)
    if is_native(target):
        payload = completion.payload
        payload["usage"] = {**(payload.get("usage") or {}), **usage_doc(usage, cost)}
    else:
        payload = from_completion(request, run.generation_id, created, completion.payload, target.provider.name,
                                  usage_doc(usage, cost))
    if request.store:
        await _save(gateway, principal, request, payload)
    return payload


async def _save(gateway: Gateway, principal: Principal, request: ResponsesRequest,
                response: dict[str, Any]) -> None:
    """Store the response; a failure is logged, not raised: the answer is generated and billed,
    and only a later ``previous_response_id`` to it will miss (a 404 that says so)."""
    try:
        await asyncio.to_thread(store.save, gateway.engine, principal.key_id, response, request.items,
                                now=gateway.clock(), ttl_s=gateway.settings.responses.store_ttl_s,
                                chain=request.chain, own_items=request.own_items)
    except SQLAlchemyError:
        log.exception("could not store response %s", response.get("id"))


async def _saving(stream: AsyncIterator[bytes], sinks: list[Sink],
                  save: Callable[[dict[str, Any]], Awaitable[None]] | None) -> AsyncGenerator[bytes, None]:
    """Relay ``stream``; once the final response exists, store it before it reaches the client."""
    saved = save is None
    try:
        async for chunk in stream:
            final = sinks[-1].final if sinks else None
            if not saved and final is not None and save is not None:
                saved = True
                await save(final)
            yield chunk
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


async def retrieve(gateway: Gateway, principal: Principal, response_id: str) -> dict[str, Any]:
    stored = await asyncio.to_thread(store.load, gateway.engine, principal.key_id, response_id,
                                     now=gateway.clock())
    if stored is None:
        raise NotFound(f"response {response_id!r} not found (never stored, expired, or another key's)", code=404)
    return stored.response


async def input_items(gateway: Gateway, principal: Principal, response_id: str, *, limit: int = 20,
                      order: str = "desc", after: str | None = None) -> dict[str, Any]:
    """``GET /v1/responses/{id}/input_items``: the stored conversation's input, paged as OpenAI does
    (newest first by default).  Items the client sent without an id get a stable one."""
    stored = await asyncio.to_thread(store.load, gateway.engine, principal.key_id, response_id,
                                     now=gateway.clock())
    if stored is None:
        raise NotFound(f"response {response_id!r} not found (never stored, expired, or another key's)", code=404)
    if order not in {"asc", "desc"} or not 1 <= limit <= 100:
        raise BadRequest("'order' must be asc or desc and 'limit' between 1 and 100", code=400)
    items = [item if isinstance(item.get("id"), str) else {"id": f"item_{response_id}_{i}", **item}
             for i, item in enumerate(stored.input)]
    items = [_listed_item(item) for item in items]
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1:] if after in ids else []
    page = items[:limit]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(items) > limit}


def _listed_item(item: dict[str, Any]) -> dict[str, Any]:
    """An input item as OpenAI lists it: typed, a message's text as content parts."""
    item = {**item, "type": item.get("type", "message")}
    if item["type"] == "message" and isinstance(item.get("content"), str):
        part = "output_text" if item.get("role") == "assistant" else "input_text"
        item["content"] = [{"type": part, "text": item["content"]}]
    return item


async def delete(gateway: Gateway, principal: Principal, response_id: str) -> dict[str, Any]:
    removed = await asyncio.to_thread(store.remove, gateway.engine, principal.key_id, response_id,
                                      now=gateway.clock())
    if not removed:
        raise NotFound(f"response {response_id!r} not found (never stored, expired, or another key's)", code=404)
    return {"id": response_id, "object": "response", "deleted": True}
