"""OpenRouter's analytics and datasets APIs, answered from tollway's ledger.

``GET /api/v1/analytics/meta``, ``POST /api/v1/analytics/query``, ``GET /api/v1/activity``
and ``GET /api/v1/datasets/{rankings-daily,app-rankings,session-cost}``, in the shapes of
OpenRouter's OpenAPI spec.  Any valid key may call them: the admin key sees every key's
traffic, any other key only its own (OpenRouter's management-key split, as a forced key
filter inside each query).  Thin handlers: parse, run one function in a worker thread, render.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tollway.analytics import datasets
from tollway.analytics.attribution import Attribution
from tollway.analytics.query import Viewer, run_query
from tollway.analytics.query_spec import QueryError, meta, parse_query
from tollway.api.common import ledger_json, read_json_object
from tollway.errors import BadRequest
from tollway.ledger.schema import utcnow

T = TypeVar("T")


async def _viewer(request: Request) -> Viewer:
    principal = await request.app.state.gateway.keys.authenticate(request)
    return Viewer(key_id=principal.key_id, is_admin=principal.is_admin)


async def _answer(request: Request, work: Callable[[Any], dict[str, Any]]) -> Response:
    """Run ``work(connection)`` in a thread; an invalid query is a 400 naming the field."""
    return await ledger_json(request, work, (QueryError, datasets.DatasetError), code=400)


def _parse(parse: Callable[[], T]) -> T:
    try:
        return parse()
    except datasets.DatasetError as exc:
        raise BadRequest(str(exc), code=400) from None


async def analytics_meta(request: Request) -> Response:
    await _viewer(request)
    return Response(orjson.dumps(meta()), media_type="application/json")


async def analytics_query(request: Request) -> Response:
    viewer = await _viewer(request)
    body = await read_json_object(request, 1 << 20)
    try:
        query = parse_query(body, utcnow())
    except QueryError as exc:
        raise BadRequest(str(exc), code=400) from None
    catalog = request.app.state.gateway.catalog

    def work(conn: Any) -> dict[str, Any]:
        return run_query(conn, query, viewer, Attribution.load(conn, catalog, with_keys=True))

    return await _answer(request, work)


async def activity(request: Request) -> Response:
    viewer = await _viewer(request)
    params = _parse(lambda: datasets.ActivityParams.parse(dict(request.query_params), utcnow().date()))
    return await _answer(request, lambda conn: datasets.activity(conn, params, viewer))


async def rankings_daily(request: Request) -> Response:
    viewer = await _viewer(request)
    params = _parse(lambda: datasets.RankingsParams.parse(dict(request.query_params), utcnow()))
    return await _answer(request, lambda conn: datasets.rankings_daily(conn, params, viewer))


async def app_rankings(request: Request) -> Response:
    viewer = await _viewer(request)
    params = _parse(lambda: datasets.AppRankingsParams.parse(dict(request.query_params), utcnow()))
    return await _answer(request, lambda conn: datasets.app_rankings(conn, params, viewer))


async def session_cost(request: Request) -> Response:
    viewer = await _viewer(request)
    params = _parse(lambda: datasets.SessionCostParams.parse(dict(request.query_params), utcnow()))
    return await _answer(request, lambda conn: datasets.session_cost(conn, params, viewer))


routes = [
    Route("/api/v1/analytics/meta", analytics_meta, methods=["GET"]),
    Route("/api/v1/analytics/query", analytics_query, methods=["POST"]),
    Route("/api/v1/activity", activity, methods=["GET"]),
    Route("/api/v1/datasets/rankings-daily", rankings_daily, methods=["GET"]),
    Route("/api/v1/datasets/app-rankings", app_rankings, methods=["GET"]),
    Route("/api/v1/datasets/session-cost", session_cost, methods=["GET"]),
]
