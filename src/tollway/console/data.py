"""The console's own JSON routes, for what no other API lists (``/api/v1/console/...``).

* ``GET /api/v1/console/activity?from=&to=``: requests, tokens and cost per day.
* ``GET /api/v1/console/generations?model=&app=&key=&task=&before=&limit=``: the generation log.
* ``GET /api/v1/console/tasks?from=&to=&top=``: agent tasks (``session_id``) with their sizes
  (by default those first seen in the last 14 days up to the latest traffic).
* ``GET /api/v1/console/providers``: circuit state, uptime, latency and throughput per endpoint.
* ``GET /api/v1/console/rankings?period=&from=&to=&top=``: the Rankings page's reports in one
  answer (``tollway.console.rankings``), for whoever may read the rankings (the public too
  when ``console.public_rankings`` is on).

They accept a bearer key or a console session (``tollway.auth``).  The admin sees every
key's traffic; any other key sees its own only: its key id replaces whatever ``key`` the
query names, so there is no parameter that widens the scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tollway.analytics import periods
from tollway.analytics.attribution import Attribution
from tollway.analytics.query import Viewer
from tollway.analytics.rankings import ReportError
from tollway.api import inputs
from tollway.api.common import gateway_of, json_response
from tollway.auth import Principal
from tollway.console import queries, rankings
from tollway.console.access import rankings_viewer
from tollway.console.cache import ResponseCache
from tollway.errors import BadRequest

DEFAULT_DAYS = 60
TASK_DAYS = 14  # tasks are ranked by size: every task in the range is read, so keep it short
MAX_DAYS = 400


def _date(request: Request, name: str) -> date | None:
    return inputs.query_date(request.query_params, name)


def _int(request: Request, name: str, default: int, most: int) -> int:
    value = inputs.query_int(request.query_params, name, default, maximum=most)
    if not value:
        raise BadRequest(f"query parameter {name} must be an integer from 1 to {most}", code=400)
    return value


def _text(request: Request, name: str) -> str | None:
    return inputs.query_text(request.query_params, name)


def scope_key(principal: Principal, request: Request) -> str | None:
    """The key id whose data this caller may read: its own, or (admin) the ``key`` asked for."""
    if principal.is_admin:
        return _text(request, "key")
    assert principal.key_id is not None
    return principal.key_id


async def _query(request: Request, work: Callable[[Any, str | None], dict[str, Any]]) -> Response:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    key_id = scope_key(principal, request)

    def call() -> dict[str, Any]:
        with gateway.engine.connect() as conn:
            return work(conn, key_id)

    return json_response(await run_in_threadpool(call))


def _range(request: Request, conn: Any, key_id: str | None, days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """``from``/``to`` as given; by default the last ``days`` days up to the latest traffic."""
    end = _date(request, "to") or queries.latest_day(conn, key_id=key_id) or datetime.now().date()
    start = _date(request, "from") or max(inputs.FIRST_DATE, end - timedelta(days=days - 1))
    if start > end:
        raise BadRequest(f"from={start} is after to={end}", code=400)
    if (end - start).days >= MAX_DAYS:
        raise BadRequest(f"the range is longer than {MAX_DAYS} days; narrow from/to", code=400)
    return start, end


async def activity(request: Request) -> Response:
    def work(conn: Any, key_id: str | None) -> dict[str, Any]:
        start, end = _range(request, conn, key_id)
        return queries.activity_series(conn, key_id=key_id, start=start, end=end)

    return await _query(request, work)


async def generation_log(request: Request) -> Response:
    before = inputs.timestamp(_text(request, "before"), "before")
    if before is not None and before.date() < inputs.FIRST_DATE:
        raise BadRequest(f"'before' must be after {inputs.FIRST_DATE}", code=400)
    limit = _int(request, "limit", 50, 500)
    model, app, task = _text(request, "model"), _text(request, "app"), _text(request, "task")

    def work(conn: Any, key_id: str | None) -> dict[str, Any]:
        return queries.generation_log(conn, key_id=key_id, model=model, app=app, session_id=task,
                                      before=before, limit=limit)

    return await _query(request, work)


async def tasks(request: Request) -> Response:
    top = _int(request, "top", 20, 500)

    def work(conn: Any, key_id: str | None) -> dict[str, Any]:
        start, end = _range(request, conn, key_id, TASK_DAYS)
        return queries.largest_tasks(conn, key_id=key_id, start=start, end=end, top=top)

    return await _query(request, work)


async def providers(request: Request) -> Response:
    """Health of every active endpoint: not per-key data, so any valid key may read it."""
    gateway = gateway_of(request)
    await gateway.keys.authenticate(request)
    catalog = gateway.catalog
    rows = []
    for model in catalog.listed_models(include_inactive=False):
        for endpoint, provider in catalog.active_endpoints(model):
            snap = gateway.health.snapshot(model.id, endpoint.provider) or {}
            rows.append({"model": model.id, "provider": endpoint.provider,
                         "provider_name": (provider.display_name if provider else None) or endpoint.provider,
                         "breaker": snap.get("breaker", "closed"), "measured": bool(snap),
                         "uptime_last_5m": snap.get("uptime_last_5m"),
                         "uptime_last_30m": snap.get("uptime_last_30m"),
                         "uptime_last_1d": snap.get("uptime_last_1d"),
                         "latency_last_30m": snap.get("latency_last_30m"),
                         "throughput_last_30m": snap.get("throughput_last_30m")})
    return json_response({"data": rows})


def page_rankings_endpoint() -> Callable[[Request], Awaitable[Response]]:
    """``GET /api/v1/console/rankings``, its answers cached ``console.rankings_cache_s`` per viewer."""
    cache = ResponseCache()

    async def endpoint(request: Request) -> Response:
        principal = await rankings_viewer(request)
        page = _page_query(request, None if principal is None else scope_key(principal, request))
        scope = "public" if principal is None else "admin" if principal.is_admin else f"key:{principal.key_id}"
        ttl = gateway_of(request).settings.console.rankings_cache_s
        cache_key = (scope, str(sorted(request.query_params.multi_items())))
        body = cache.get(cache_key) if ttl > 0 else None
        if body is None:
            # The admin's ``key`` filter reads as that key would: the same scoped queries.
            viewer = None if principal is None else Viewer(key_id=page.key_id, is_admin=page.key_id is None)
            body = bytes(json_response(await _page_rankings(request, page, viewer)).body)
            if ttl > 0:
                cache.put(cache_key, body, ttl)
        return Response(body, media_type="application/json")

    return endpoint


def _page_query(request: Request, key_id: str | None) -> rankings.PageQuery:
    period = _text(request, "period") or "week"
    if period not in ("day", "week", "month"):
        raise BadRequest(f"period={period[:20]!r}: use day, week or month", code=400)
    page = rankings.PageQuery(period=period, start=_date(request, "from"), end=_date(request, "to"),
                              top=_int(request, "top", 8, 100), key_id=key_id)
    try:
        page.ranking("model", period, page.top).validate()
    except ReportError as exc:
        raise BadRequest(str(exc), code=400) from None
    return page


async def _page_rankings(request: Request, asked: rankings.PageQuery, viewer: Viewer | None) -> dict[str, Any]:
    """The three reads run at once, each on its own connection: the model rollup (four
    reports), the app rollup, and (for a logged-in viewer) the categories.  Days without
    ``from`` first look up the latest day of traffic (their default range ends there)."""
    gateway = gateway_of(request)

    def run(work: Callable[[Any, Attribution], Any], with_keys: bool = False) -> Any:
        with gateway.engine.connect() as conn:
            return work(conn, Attribution.load(conn, gateway.catalog, with_keys=with_keys))

    latest = None
    if asked.period == "day" and asked.start is None and asked.end is None:
        latest = await run_in_threadpool(run, lambda c, _: queries.latest_day(c, key_id=asked.key_id))
    page = asked.with_default_range(latest)

    def reports(conn: Any, attribution: Attribution) -> dict[str, Any]:
        return {by: rankings.slim(report) for by, report in rankings.model_reports(conn, page, attribution).items()}

    def apps(conn: Any, attribution: Attribution) -> dict[str, Any]:
        return rankings.slim(rankings.app_report(conn, page, attribution))

    def categories(conn: Any, attribution: Attribution) -> dict[str, Any] | None:
        # The chart ends where the model chart's last period does: found here from the latest
        # day of traffic, so this read need not wait for the model rollup's.
        last = None if page.end is not None else queries.latest_day(conn, key_id=page.key_id)
        if last is not None and page.start is not None and last < page.start:
            last = None
        span = rankings.category_range(page, periods.floor(last, page.period) if last else None)
        if viewer is None or span is None:
            return None
        return rankings.category_report(conn, span, viewer, attribution)

    async def none() -> None:
        return None

    models, app, category = await asyncio.gather(
        run_in_threadpool(run, reports), run_in_threadpool(run, apps),
        run_in_threadpool(run, categories, True) if viewer is not None else none())
    return {**models, "app": app, "categories": category}


routes = [
    Route("/api/v1/console/activity", activity, methods=["GET"]),
    Route("/api/v1/console/generations", generation_log, methods=["GET"]),
    Route("/api/v1/console/tasks", tasks, methods=["GET"]),
    Route("/api/v1/console/providers", providers, methods=["GET"]),
]
