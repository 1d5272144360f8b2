"""POST /v1/messages and /v1/messages/count_tokens (also under /api/v1): Anthropic's
Messages API, any model behind it.

Errors on these paths are rendered in Anthropic's shape by ``tollway.app``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tollway.api.common import (
    gateway_of,
    json_object,
    json_response,
    read_body,
    read_for_passthrough,
    read_json_object,
    request_meta,
)
from tollway.gateway import Gateway
from tollway.messages import MessagesRequest
from tollway.streaming import SSEResponse

# Client headers that change what an Anthropic upstream does; forwarded on pass-through only.
_FORWARDED = ("anthropic-beta", "anthropic-version")


def _forwarded(request: Request) -> dict[str, str]:
    return {name: value for name in _FORWARDED if (value := request.headers.get(name))}


def _query(request: Request) -> str:
    """The raw query string (``beta=true``), read from the scope: ``request.url`` builds a
    whole URL object, a measurable share of a relayed request."""
    raw: bytes = request.scope.get("query_string", b"")
    return raw.decode("latin-1")


def _parse(gateway: Gateway, body: dict[str, Any]) -> MessagesRequest:
    """The ordinary parse; a request for a model served only in chat format is translated as
    it is checked (one pass over the conversation)."""
    model = body.get("model")
    return MessagesRequest.parse(body, to_chat=isinstance(model, str) and gateway.translates_messages_to_chat(model))


async def messages(request: Request) -> Response | SSEResponse:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    # A request that can only go to Anthropic-format upstreams keeps its conversation raw.
    parsed = read_for_passthrough(raw, principal, gateway.passes_messages_through,
                                  MessagesRequest.parse_passthrough) or _parse(gateway, json_object(raw))
    outcome = await gateway.messages(principal, parsed, request_meta(request, "messages"),
                                     _forwarded(request), _query(request))
    headers = {"X-Generation-Id": outcome.generation_id}
    if outcome.stream is not None:
        return SSEResponse(outcome.stream, headers=headers)
    return json_response(outcome.payload, headers=headers)


async def count_tokens(request: Request) -> Response:
    """``{"input_tokens": N}``; ``X-Tollway-Token-Count`` says whether the upstream counted
    (``upstream``) or tollway estimated locally (``estimate``)."""
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    body = await read_json_object(request, gateway.settings.server.max_body_bytes)
    parsed = MessagesRequest.parse(body, counting=True)
    tokens, source = await gateway.count_message_tokens(principal, parsed, _forwarded(request),
                                                        _query(request))
    return json_response({"input_tokens": tokens}, headers={"X-Tollway-Token-Count": source})
