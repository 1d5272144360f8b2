"""Who may read the analytics routes, and over which traffic.

The admin reads everything.  Any other key reads the rankings of its own traffic only:
its key id is written into the query (``key=``), replacing whatever it asked for, and the
per-key dimensions are refused.  With ``console.public_rankings`` the rankings answer
without a key too, as OpenRouter's public rankings do, but only over model-level and app
dimensions (never keys or their owners' countries).  The other analytics routes stay
admin-only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from tollway.analytics.attribution import MODEL_DIMENSIONS
from tollway.api.common import gateway_of
from tollway.auth import Principal, bearer_token, require_admin
from tollway.console.cache import ResponseCache
from tollway.errors import PermissionDenied

Endpoint = Callable[[Request], Awaitable[Response]]

PUBLIC_DIMENSIONS = (*MODEL_DIMENSIONS, "app")


def admin_only(endpoint: Endpoint) -> Endpoint:
    """Analytics cover every key's traffic, so they need the admin key."""

    async def guarded(request: Request) -> Response:
        require_admin(await gateway_of(request).keys.authenticate(request))
        return await endpoint(request)

    return guarded


def scoped_rankings(endpoint: Endpoint) -> Endpoint:
    """Rankings for the admin (all), a key (its own traffic) or, if public, anyone (model level).

    Answers are cached for ``console.rankings_cache_s`` per viewer and query (0: off).
    """
    cache = ResponseCache()

    async def cached(request: Request, scope: str) -> Response:
        ttl = gateway_of(request).settings.console.rankings_cache_s
        key = (scope, str(sorted(request.query_params.multi_items())))
        body = cache.get(key) if ttl > 0 else None
        if body is not None:
            return Response(body, media_type="application/json")
        response = await endpoint(request)
        if ttl > 0 and response.status_code == 200:
            cache.put(key, bytes(response.body), ttl)
        return response

    async def guarded(request: Request) -> Response:
        principal = await rankings_viewer(request)
        if principal is None:
            _refuse_audience(request, "the public rankings")
            return await cached(request, "public")
        if principal.is_admin:
            return await cached(request, "admin")
        _refuse_audience(request, "a non-admin key")
        assert principal.key_id is not None
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "key"]
        params.append(("key", principal.key_id))
        request.scope["query_string"] = urlencode(params).encode()
        return await cached(Request(request.scope, request.receive), "key:" + principal.key_id)

    return guarded


async def rankings_viewer(request: Request) -> Principal | None:
    """Who reads the rankings: a key, or None for an anonymous reader of the public rankings
    (``console.public_rankings``; they may not filter by key).  Anyone else gets a 401."""
    gateway = gateway_of(request)
    sessions = gateway.keys.sessions
    # A stale session cookie (expired, logged out) on the public page is no login at all.
    anonymous = bearer_token(request) is None and (sessions is None or await sessions.of_request(request) is None)
    if anonymous and gateway.settings.console.public_rankings:
        if request.query_params.get("key"):
            raise PermissionDenied("the public rankings cannot be filtered by key; log in", code=403)
        return None
    principal: Principal = await gateway.keys.authenticate(request)
    return principal


def _refuse_audience(request: Request, who: str) -> None:
    by = request.query_params.get("by", "model").replace("_", "-")
    if by not in PUBLIC_DIMENSIONS:
        raise PermissionDenied(f"rankings by {by!r} need the admin key; {who} may rank by "
                               f"{', '.join(PUBLIC_DIMENSIONS)}", code=403)
