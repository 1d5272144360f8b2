"""GET /api/v1/analytics/...: the report data as JSON, for the dashboard.

Thin handlers: parse the query string, run one analytics function over the rollups in a
worker thread (SQLAlchemy is blocking), render.  Responses are the same documents the
``tollway report ... --json`` commands print.  Authentication (admin key) is applied by
the app where these routes are mounted, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tollway.analytics.attribution import Attribution
from tollway.analytics.distributions import request_distribution, task_distribution
from tollway.analytics.rankings import RankingQuery, ReportError, rankings
from tollway.analytics.whatif import what_if
from tollway.api import inputs
from tollway.api.common import ledger_json
from tollway.errors import BadRequest


def _date(request: Request, name: str) -> date | None:
    return inputs.query_date(request.query_params, name)


def _int(request: Request, name: str, default: int | None) -> int | None:
    return inputs.query_int(request.query_params, name, default)


async def _run(request: Request, work: Callable[[Any], dict[str, Any]]) -> Response:
    """Run ``work(connection)`` in a thread; report errors become 400s."""
    return await ledger_json(request, work, (ReportError,))


async def rankings_endpoint(request: Request) -> Response:
    """``?by=origin&period=week&from=2026-02-09&to=2026-02-22&top=5``."""
    params = request.query_params
    by = inputs.query_text(params, "by", "model") or "model"
    query = RankingQuery(by=by.replace("_", "-"), period=inputs.query_text(params, "period", "week") or "week",
                         start=_date(request, "from"), end=_date(request, "to"),
                         top=_int(request, "top", None), app=inputs.query_text(params, "app"),
                         key_id=inputs.query_text(params, "key"))
    try:
        query.validate()
    except ReportError as exc:
        raise BadRequest(str(exc)) from None
    catalog = request.app.state.gateway.catalog

    def work(conn: Any) -> dict[str, Any]:
        attribution = Attribution.load(conn, catalog, with_keys=query.by == "user-country")
        return rankings(conn, query, attribution)

    return await _run(request, work)


async def cost_endpoint(request: Request) -> Response:
    """``?what_if=minimax/minimax-m2.5&model=anthropic/claude-opus-4.6&from=...&to=...``."""
    targets = inputs.query_texts(request.query_params, "what_if")
    if not targets:
        raise BadRequest("give at least one what_if=MODEL to re-price the traffic at")
    models = inputs.query_texts(request.query_params, "model")
    provider = inputs.query_text(request.query_params, "provider")
    start, end = _date(request, "from"), _date(request, "to")
    catalog = request.app.state.gateway.catalog
    return await _run(request, lambda conn: what_if(conn, catalog, targets, start=start, end=end,
                                                     models=models, provider=provider))


async def tasks_endpoint(request: Request) -> Response:
    """``?from=...&to=...&top=10``: exact tokens-per-task percentiles and the largest tasks."""
    start, end, top = _date(request, "from"), _date(request, "to"), _int(request, "top", 10)
    return await _run(request, lambda conn: task_distribution(conn, start=start, end=end, top=top or 0))


async def requests_endpoint(request: Request) -> Response:
    """``?from=...&to=...&model=...``: bucketed tokens-per-request percentiles and histogram."""
    start, end = _date(request, "from"), _date(request, "to")
    model = inputs.query_text(request.query_params, "model")
    return await _run(request, lambda conn: request_distribution(conn, start=start, end=end, model=model))


routes = [
    Route("/api/v1/analytics/rankings", rankings_endpoint, methods=["GET"]),
    Route("/api/v1/analytics/cost", cost_endpoint, methods=["GET"]),
    Route("/api/v1/analytics/tasks", tasks_endpoint, methods=["GET"]),
    Route("/api/v1/analytics/requests", requests_endpoint, methods=["GET"]),
]
