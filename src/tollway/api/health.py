"""GET /health and GET /metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tollway import __version__
from tollway.api.common import gateway_of, json_response


async def health(request: Request) -> Response:
    gateway = gateway_of(request)
    models = sum(1 for m in gateway.catalog.models.values() if gateway.catalog.is_active(m))
    return json_response({"status": "ok", "version": __version__, "active_models": models})


async def metrics(request: Request) -> Response:
    body = gateway_of(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
