"""POST /v1/embeddings (also /api/v1/embeddings)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tollway.api.common import gateway_of, json_response, read_json_object, request_meta


async def embeddings(request: Request) -> Response:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    body = await read_json_object(request, gateway.settings.server.max_body_bytes)
    payload = await gateway.embeddings(principal, body, request_meta(request, "embeddings"))
    return json_response(payload, headers={"X-Generation-Id": str(payload["id"])})
