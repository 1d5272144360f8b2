"""Model-list endpoints: OpenRouter's ``/api/v1/models`` (+ ``/endpoints``) and OpenAI's ``/v1/models``.

Thin handlers: read the query, call one renderer from :mod:`tollway.catalog.openrouter_schema`,
return JSON.  They read ``request.app.state.gateway.catalog`` (a :class:`~tollway.catalog.Catalog`)
and, when the gateway has one, ``gateway.endpoint_health`` (a callable ``(model id, provider) ->
EndpointHealth | None`` or a mapping keyed the same way) for uptime/latency/throughput.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tollway.catalog.index import Catalog
from tollway.catalog.openrouter_schema import (
    health_lookup,
    not_found,
    render_endpoints,
    render_models,
    render_openai_models,
)

_TRUE = {"1", "true", "yes", "on"}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.gateway.catalog
    return catalog


def _include_all(request: Request) -> bool:
    return request.query_params.get("all", "").lower() in _TRUE


async def list_models_openrouter(request: Request) -> Response:
    """``GET /api/v1/models[?all=true]``."""
    return _json(render_models(_catalog(request), include_all=_include_all(request)))


async def list_models_openai(request: Request) -> Response:
    """``GET /v1/models[?all=true]``."""
    return _json(render_openai_models(_catalog(request), include_all=_include_all(request)))


async def model_endpoints(request: Request) -> Response:
    """``GET /api/v1/models/{author}/{slug}/endpoints[?all=true]``."""
    catalog = _catalog(request)
    model_id = f"{request.path_params['author']}/{request.path_params['slug']}"
    model = catalog.models.get(model_id)
    include_all = _include_all(request)
    if model is None or (not include_all and not catalog.is_active(model)):
        return _json(not_found(model_id), status=404)
    health = health_lookup(getattr(request.app.state.gateway, "endpoint_health", None))
    return _json(render_endpoints(catalog, model, include_all=include_all, health=health))
