"""POST /v1/chat/completions (also /api/v1/chat/completions)."""

from __future__ import annotations

import orjson
from starlette.requests import Request

from tollway.api.common import JSONBytesResponse, gateway_of, read_json_object, request_meta
from tollway.streaming import SSEResponse


async def chat_completions(request: Request) -> JSONBytesResponse | SSEResponse:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    body = await read_json_object(request, gateway.settings.server.max_body_bytes)
    outcome = await gateway.chat(principal, body, request_meta(request, "chat"))
    if outcome.stream is not None:
        return SSEResponse(outcome.stream, headers={"X-Generation-Id": outcome.generation_id})
    return JSONBytesResponse(orjson.dumps(outcome.payload),
                             [(b"x-generation-id", outcome.generation_id.encode())])
