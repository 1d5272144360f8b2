"""POST /v1/messages (also /api/v1/messages): Anthropic's Messages API, any model behind it.

Errors on these paths are rendered in Anthropic's shape by ``tollway.app``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tollway.api.common import gateway_of, json_response, read_json_object, request_meta
from tollway.messages import MessagesRequest
from tollway.streaming import SSEResponse

# Client headers that change what an Anthropic upstream does; forwarded on pass-through only.
_FORWARDED = ("anthropic-beta",)


async def messages(request: Request) -> Response | SSEResponse:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    body = await read_json_object(request, gateway.settings.server.max_body_bytes)
    parsed = MessagesRequest.parse(body)
    forward = {name: value for name in _FORWARDED if (value := request.headers.get(name))}
    outcome = await gateway.messages(principal, parsed, request_meta(request, "messages"), forward)
    headers = {"X-Generation-Id": outcome.generation_id}
    if outcome.stream is not None:
        return SSEResponse(outcome.stream, headers=headers)
    return json_response(outcome.payload, headers=headers)
