"""POST /v1/responses (also /api/v1/responses), GET and DELETE /v1/responses/{id}:
the OpenAI Responses API, any model behind it (see ``tollway.responses``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tollway.api.common import gateway_of, json_object, json_response, read_body, read_for_passthrough, request_meta
from tollway.errors import BadRequest
from tollway.responses import passthrough, run
from tollway.streaming import SSEResponse


async def create(request: Request) -> Response | SSEResponse:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    raw = await read_body(request, gateway.settings.server.max_body_bytes)
    # A request that can only go to Responses-native upstreams keeps its items raw.
    parsed = read_for_passthrough(
        raw, principal, gateway.passes_responses_through,
        lambda body: passthrough.read(body, gateway.settings.responses.store_default))
    if parsed is None:
        parsed = await run.parse_request(gateway, principal, json_object(raw))
    outcome = await run.create_response(gateway, principal, parsed, request_meta(request, "responses"))
    headers = {"X-Generation-Id": outcome.response_id}
    if outcome.dropped_tools:
        headers["X-Tollway-Dropped-Tools"] = ",".join(outcome.dropped_tools)
    if outcome.stream is not None:
        return SSEResponse(outcome.stream, headers=headers)
    return json_response(outcome.payload, headers=headers)


async def retrieve(request: Request) -> Response:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    return json_response(await run.retrieve(gateway, principal, request.path_params["id"]))


async def input_items(request: Request) -> Response:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    query = request.query_params
    limit = query.get("limit", "20")
    if not limit.isdigit():
        raise BadRequest("'limit' must be an integer between 1 and 100", code=400)
    return json_response(await run.input_items(gateway, principal, request.path_params["id"], limit=int(limit),
                                               order=query.get("order", "desc"), after=query.get("after")))


async def delete(request: Request) -> Response:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    return json_response(await run.delete(gateway, principal, request.path_params["id"]))
