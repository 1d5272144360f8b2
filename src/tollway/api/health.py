"""GET /health and GET /metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from tollway import __version__
from tollway.api.common import gateway_of, json_response


async def health(request: Request) -> Response:
    """200 while generations can be metered (``status`` "degraded" while the ledger
    journals them), 503 "unhealthy" when they can't."""
    gateway = gateway_of(request)
    models = sum(1 for m in gateway.catalog.models.values() if gateway.catalog.is_active(m))
    ledger = gateway.writer.health()
    healthy = ledger.alive and ledger.database_reachable and ledger.write_ahead_writable is not False
    status = "ok" if healthy else "degraded" if ledger.metering_possible else "unhealthy"
    return json_response({"status": status, "version": __version__, "active_models": models,
                          "ledger": ledger.to_json()}, status=503 if status == "unhealthy" else 200)


async def metrics(request: Request) -> Response:
    body = gateway_of(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
