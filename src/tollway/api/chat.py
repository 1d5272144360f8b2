"""POST /v1/chat/completions (also /api/v1/chat/completions)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tollway.api.common import gateway_of, json_response, read_json_object, request_meta
from tollway.streaming import SSEResponse


async def chat_completions(request: Request) -> Response | SSEResponse:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    body = await read_json_object(request, gateway.settings.server.max_body_bytes)
    outcome = await gateway.chat(principal, body, request_meta(request, "chat"))
    headers = {"X-Generation-Id": outcome.generation_id}
    if outcome.stream is not None:
        return SSEResponse(outcome.stream, headers=headers)
    return json_response(outcome.payload, headers=headers)
