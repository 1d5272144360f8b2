"""build_app(settings): routes, error rendering, lifespan (HTTP client, DB engine, ledger).

Middleware is deliberately absent from the hot path: authentication happens inside the
handlers that need it, and errors are rendered by exception handlers, so a request
pays for nothing it does not use.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from tollway.api import chat, embeddings, generation, health, messages, openapi, responses
from tollway.api.common import json_response
from tollway.api.inputs import nul_in_url
from tollway.api.outages import as_outage
from tollway.config import Settings, load_settings
from tollway.errors import TollwayError
from tollway.gateway import Gateway

log = logging.getLogger("tollway")

Endpoint = Callable[[Request], Awaitable[Response]]


def _is_anthropic_path(request: Request) -> bool:
    return request.url.path.endswith(("/messages", "/messages/count_tokens"))


async def _tollway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TollwayError)
    body = exc.to_anthropic() if _is_anthropic_path(request) else exc.to_openai()
    return json_response(body, status=exc.status, headers=exc.headers or None)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err: TollwayError = TollwayError(f"no such endpoint: {request.method} {request.url.path}", code=404)
    elif exc.status_code == 405:
        err = TollwayError(f"method {request.method} is not allowed on {request.url.path}", code=405)
    else:
        err = TollwayError(str(exc.detail), code=exc.status_code)
    err.status = exc.status_code
    err.type = "invalid_request_error"
    return await _tollway_error(request, err)


async def _unexpected(request: Request, exc: Exception) -> Response:
    outage = as_outage(exc)
    if outage is not None:
        log.warning("%s %s: %s (%s)", request.method, request.url.path, outage.message, type(exc).__name__)
        return await _tollway_error(request, outage)
    # Logged with its traceback for operators; the client gets no internals.
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    err = TollwayError("internal error in the gateway; the request was not completed", code=500)
    return await _tollway_error(request, err)


def _routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = [Route("/health", health.health, methods=["GET"]),
                               Route("/metrics", health.metrics, methods=["GET"]),
                               Route("/openapi.json", openapi.openapi_json, methods=["GET"])]
    for prefix in ("/v1", "/api/v1"):
        routes.append(Route(f"{prefix}/chat/completions", chat.chat_completions, methods=["POST"]))
        routes.append(Route(f"{prefix}/messages", messages.messages, methods=["POST"]))
        routes.append(Route(f"{prefix}/messages/count_tokens", messages.count_tokens, methods=["POST"]))
        routes.append(Route(f"{prefix}/embeddings", embeddings.embeddings, methods=["POST"]))
        routes.append(Route(f"{prefix}/responses", responses.create, methods=["POST"]))  # issue 12
        routes.append(Route(f"{prefix}/responses/{{id}}", responses.retrieve, methods=["GET"]))
        routes.append(Route(f"{prefix}/responses/{{id}}", responses.delete, methods=["DELETE"]))
        routes.append(Route(f"{prefix}/responses/{{id}}/input_items", responses.input_items, methods=["GET"]))
    routes.append(Route("/api/v1/generation", generation.generation, methods=["GET"]))
    routes.extend(_key_routes())
    routes.extend(_catalog_routes())
    routes.extend(_analytics_routes())
    routes.extend(_openrouter_analytics_routes())
    return routes


def _console_routes(settings: Settings, gateway: Gateway) -> list[BaseRoute]:
    """The web console at /console and its JSON routes (``tollway.console``)."""
    if not settings.console.enabled:
        return []
    from tollway.console import data
    from tollway.console.web import console_routes

    return [*data.routes, *console_routes(gateway)]


def _key_routes() -> list[BaseRoute]:
    """The key's own view and the admin API over keys (``tollway.api.keys``)."""
    from tollway.api import keys

    return [
        Route("/api/v1/key", keys.current_key, methods=["GET"]),
        Route("/api/v1/credits", keys.credits, methods=["GET"]),
        Route("/api/v1/keys", keys.list_keys, methods=["GET"]),
        Route("/api/v1/keys", keys.create_key, methods=["POST"]),
        Route("/api/v1/keys/{id}", keys.get_key, methods=["GET"]),
        Route("/api/v1/keys/{id}", keys.update_key, methods=["PATCH"]),
        Route("/api/v1/keys/{id}", keys.delete_key, methods=["DELETE"]),
        Route("/api/v1/keys/{id}/credits", keys.add_credits, methods=["POST"]),
        Route("/api/v1/keys/{id}/usage", keys.key_usage, methods=["GET"]),
    ]


def _catalog_routes() -> list[BaseRoute]:
    """The model catalog, OpenAI- and OpenRouter-shaped (``tollway.api.models``)."""
    from tollway.api import models

    return [
        Route("/v1/models", models.list_models_openai, methods=["GET"]),
        Route("/api/v1/models", models.list_models_openrouter, methods=["GET"]),
        Route("/api/v1/models/{author}/{slug}/endpoints", models.model_endpoints, methods=["GET"]),
    ]


def _analytics_routes() -> list[BaseRoute]:
    """Rankings, what-if cost, task and request sizes (``tollway.api.analytics``)."""
    from tollway.api import analytics
    from tollway.console.access import admin_only, scoped_rankings

    return [Route(r.path, (scoped_rankings if r.path.endswith("/rankings") else admin_only)(r.endpoint),
                  methods=list(r.methods or ["GET"]))
            for r in analytics.routes]


def _openrouter_analytics_routes() -> list[BaseRoute]:
    """OpenRouter's analytics and datasets APIs; each handler scopes non-admin keys to their own traffic."""
    from tollway.api import openrouter_analytics

    return list(openrouter_analytics.routes)


# The generation endpoints, dispatched without Starlette's router and middleware.  Agent
# traffic (/v1/messages, /v1/responses) carries the biggest prompts, so it goes here too.
_HOT_PATHS: dict[str, Callable[[Request], Awaitable[Any]]] = {
    f"{prefix}{path}": handler for prefix in ("/v1", "/api/v1")
    for path, handler in (("/chat/completions", chat.chat_completions), ("/messages", messages.messages),
                          ("/responses", responses.create))
}


class GatewayApp:
    """The ASGI entry point: the generation endpoints go straight to their handlers.

    Starlette's middleware stack and router cost about a fifth of the CPU of a proxied
    request (py-spy, saturation run), so the hottest endpoint skips them while keeping
    the same handler and the same error rendering; everything else is Starlette's.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = nul_in_url(scope["path"], scope.get("query_string", b""))
            if refused is not None:
                scope["app"] = self.app
                await (await _tollway_error(Request(scope, receive), refused))(scope, receive, send)
                return
        handler = _HOT_PATHS.get(scope["path"]) if scope["type"] == "http" else None
        if handler is not None and scope["method"] == "POST":
            scope["app"] = self.app
            request = Request(scope, receive)
            try:
                response: Any = await handler(request)
            except TollwayError as exc:
                response = await _tollway_error(request, exc)
            except Exception as exc:  # rendered without internals, logged with them
                response = await _unexpected(request, exc)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_app(settings: Settings, gateway: Gateway | None = None) -> GatewayApp:
    """The ASGI app for these settings.  The gateway starts and stops with the lifespan."""
    gw = gateway if gateway is not None else Gateway(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.start()
        try:
            yield
        finally:
            await gw.stop()

    handlers: dict[Any, Any] = {TollwayError: _tollway_error, HTTPException: _http_error,
                                Exception: _unexpected}
    app = Starlette(routes=_routes() + _console_routes(settings, gw), exception_handlers=handlers,
                    lifespan=lifespan)
    app.state.gateway = gw
    return GatewayApp(app)


def app_from_environment() -> GatewayApp:
    """Factory for ``uvicorn --factory`` (multi-worker serve): config path from the env."""
    import os

    return build_app(load_settings(os.environ.get("TOLLWAY_CONFIG") or None))
