"""GET /openapi.json: an OpenAPI 3.1 document of tollway's own HTTP API.

One source: the paths below and the schemas in ``tollway.api.openapi_schemas``, kept beside
the handlers.  The document served lists the operations this app actually routes (so it
never describes an endpoint that is absent); ``tests/api/test_schemathesis.py`` checks that
every route is documented, and fuzzes the gateway from the document.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tollway import __version__
from tollway.api.inputs import FIRST_DATE, LAST_DATE, MAX_QUERY_INT
from tollway.api.openapi_schemas import SCHEMAS, Schema, ref

_JSON = "application/json"

_KEY_AUTH: list[dict[str, list[str]]] = [{"bearer": []}, {"x-api-key": []}]
_ADMIN_AUTH: list[dict[str, list[str]]] = [{"bearer": []}]


def _body(schema: str, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {_JSON: {"schema": ref(schema)}}}


def _json(description: str, schema: str | Schema) -> dict[str, Any]:
    return {"description": description,
            "content": {_JSON: {"schema": ref(schema) if isinstance(schema, str) else schema}}}


def _errors(*statuses: int, anthropic: bool = False) -> dict[str, Any]:
    meaning = {400: "the request is invalid; the message names the field to fix",
               401: "missing, invalid, revoked or expired key", 402: "the key's credit limit is reached",
               403: "the key may not do this (admin endpoints, allowed models, policies)",
               404: "no such model, key or generation", 413: "the body is over server.max_body_bytes",
               429: "the key's rpm/tpm limit (Retry-After)",
               502: "every upstream attempt failed (each one listed in error.metadata.attempts)",
               503: "a dependency (database, Redis) or every endpoint is unavailable (Retry-After)"}
    schema = "AnthropicError" if anthropic else "Error"
    return {str(s): _json(meaning[s], schema) for s in statuses}


_GENERATE_ERRORS = (400, 401, 402, 403, 404, 413, 429, 502, 503)


def _generate(summary: str, request: str, response: str, tag: str, *, anthropic: bool = False,
              streams: bool = True) -> dict[str, Any]:
    ok = _json("the result; X-Generation-Id carries the generation id", response)
    if streams:
        ok["content"]["text/event-stream"] = {"schema": {"type": "string",
                                                         "description": "with stream: true, server-sent events"}}
    return {"post": {"summary": summary, "tags": [tag], "security": _KEY_AUTH, "requestBody": _body(request),
                     "responses": {"200": ok, **_errors(*_GENERATE_ERRORS, anthropic=anthropic)}}}


def _query(name: str, description: str, schema: Schema | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


_DATE = {"type": "string", "format": "date"}
_FROM = _query("from", f"first day (YYYY-MM-DD, {FIRST_DATE} to {LAST_DATE})", _DATE)
_TO = _query("to", f"last day (YYYY-MM-DD, {FIRST_DATE} to {LAST_DATE})", _DATE)
_TOP = _query("top", "rows to return", {"type": "integer", "minimum": 0, "maximum": MAX_QUERY_INT})
_KEY_ID = {"name": "id", "in": "path", "required": True, "description": "the key's id (`hash` in listings)",
           "schema": {"type": "string"}}


def _get(summary: str, tag: str, response: str | Schema, *, security: list[dict[str, list[str]]] | None = None,
         parameters: list[dict[str, Any]] | None = None, errors: tuple[int, ...] = (401,)) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": {"200": _json("OK", response),
                                                                           **_errors(*errors)}}
    if security is not None:
        op["security"] = security
    if parameters:
        op["parameters"] = parameters
    return op


def _report(summary: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {"get": _get(summary, "analytics", "Report", security=_ADMIN_AUTH, parameters=parameters,
                        errors=(400, 401, 403, 503))}


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/health": {"get": _get("liveness and ledger writer health", "operations", "Health", security=[],
                                errors=())},
        "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["operations"], "security": [],
                             "responses": {"200": {"description": "Prometheus text exposition format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "this document", "tags": ["operations"], "security": [],
                                  "responses": {"200": {"description": "OpenAPI 3.1",
                                                        "content": {_JSON: {"schema": {"type": "object"}}}}}}},
    }
    for prefix in ("/v1", "/api/v1"):
        paths[f"{prefix}/chat/completions"] = _generate(
            "chat completion (OpenAI's API, OpenRouter's routing fields), streaming or not",
            "ChatCompletionRequest", "ChatCompletion", "generate")
        paths[f"{prefix}/messages"] = _generate("Anthropic's Messages API, to any model", "MessagesRequest",
                                                "Message", "generate", anthropic=True)
        paths[f"{prefix}/messages/count_tokens"] = {"post": {  # issue 12
            "summary": "input tokens of a Messages request: the upstream's count (Anthropic format) or a local "
                       "estimate, as the X-Tollway-Token-Count header (upstream|estimate) says; not metered",
            "tags": ["generate"], "security": _KEY_AUTH, "requestBody": _body("MessagesCountTokensRequest"),
            "responses": {"200": _json("the count", "MessageTokensCount"),
                          **_errors(400, 401, 403, 404, 413, 502, 503, anthropic=True)}}}
        paths[f"{prefix}/embeddings"] = _generate("embeddings, metered", "EmbeddingsRequest", "Embeddings",
                                                  "generate", streams=False)
        paths.update(_responses_paths(prefix))
    paths["/api/v1/generation"] = {"get": _get(
        "the ledger record of one of the calling key's generations", "ledger", "Generation", security=_KEY_AUTH,
        parameters=[{"name": "id", "in": "query", "required": True, "description": "gen-... (X-Generation-Id)",
                     "schema": {"type": "string"}}], errors=(400, 401, 404, 503))}
    paths["/v1/models"] = {"get": _get("the catalog, OpenAI-shaped", "models", "ModelListOpenAI", errors=())}
    paths["/api/v1/models"] = {"get": _get(
        "the catalog, OpenRouter-shaped", "models", "ModelListOpenRouter", errors=(),
        parameters=[_query("all", "true: include models with no usable endpoint", {"type": "boolean"})])}
    paths["/api/v1/models/{author}/{slug}/endpoints"] = {"get": _get(
        "a model's endpoints with uptime, latency and throughput", "models", "ModelEndpoints", errors=(404,),
        parameters=[{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                    for n in ("author", "slug")])}
    paths["/api/v1/key"] = {"get": _get("the calling key's limit and usage", "keys", "CurrentKey",
                                        security=_KEY_AUTH, errors=(401, 503))}
    paths["/api/v1/credits"] = {"get": _get("the calling key's credit and usage", "keys", "Credits",
                                            security=_KEY_AUTH, errors=(401, 503))}
    paths.update(_admin_paths())
    paths["/api/v1/analytics/rankings"] = _report("rankings over the rollups", [
        _query("by", "what to rank", {"enum": ["model", "author", "origin", "weights", "provider",
                                               "provider-country", "app", "key", "user-country"]}),
        _query("period", "bucket size", {"enum": ["day", "week", "month"]}), _FROM, _TO, _TOP,
        _query("app", "only this app (HTTP-Referer)"), _query("key", "only this key id")])
    paths["/api/v1/analytics/cost"] = _report("what the traffic would cost at other models' prices", [
        {"name": "what_if", "in": "query", "required": True, "description": "model id(s) to re-price at",
         "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": True},
        {"name": "model", "in": "query", "required": False, "description": "only traffic of these models",
         "schema": {"type": "array", "items": {"type": "string"}}, "style": "form", "explode": True},
        _query("provider", "the provider whose prices to use"), _FROM, _TO])
    paths["/api/v1/analytics/tasks"] = _report("tokens per task: percentiles and the largest tasks",
                                               [_FROM, _TO, _TOP])
    paths["/api/v1/analytics/requests"] = _report("tokens per request: percentiles and histogram",
                                                  [_FROM, _TO, _query("model", "only this model")])
    paths.update(_openrouter_analytics_paths())
    paths.update(_console_paths())
    return paths


def _strings(*names: str) -> list[dict[str, Any]]:
    return [_query(name, name.replace("_", " ")) for name in names]


def _openrouter_analytics_paths() -> dict[str, Any]:
    """OpenRouter's analytics and datasets APIs (``tollway.api.openrouter_analytics``): any key;
    the admin key sees every key's traffic, others their own."""
    errors = (400, 401, 503)
    window = [_query("start_date", "first day (YYYY-MM-DD)", _DATE), _query("end_date", "last day (YYYY-MM-DD)", _DATE)]
    paging = [_query("limit", "rows", {"type": "integer", "minimum": 1}),
              _query("offset", "rows to skip", {"type": "integer", "minimum": 0})]
    return {
        "/api/v1/analytics/meta": {"get": _get("the dimensions and metrics /analytics/query accepts", "analytics",
                                               "Report", security=_KEY_AUTH, errors=(401,))},
        "/api/v1/analytics/query": {"post": {
            "summary": "an analytics query (OpenRouter's shape): metrics by dimensions over a time range",
            "tags": ["analytics"], "security": _KEY_AUTH,
            "requestBody": {"required": True, "content": {_JSON: {"schema": {"type": "object"}}}},
            "responses": {"200": _json("the result rows", "Report"), **_errors(*errors, 413)}}},
        "/api/v1/activity": {"get": _get("per-day activity of the last 30 completed UTC days", "analytics", "Report",
                                         security=_KEY_AUTH, errors=errors,
                                         parameters=[_query("date", "one day (YYYY-MM-DD)", _DATE),
                                                     *_strings("api_key_hash", "group_by")])},
        "/api/v1/datasets/rankings-daily": {"get": _get(
            "daily model rankings from this gateway's ledger", "analytics", "Report", security=_KEY_AUTH,
            errors=errors, parameters=[*window, _query("period", "bucket", {"enum": ["day", "week", "month"]}),
                                       *_strings("modality", "context_bucket", "category", "language_type")])},
        "/api/v1/datasets/app-rankings": {"get": _get(
            "app rankings (popular or trending)", "analytics", "Report", security=_KEY_AUTH, errors=errors,
            parameters=[*window, _query("sort", "order", {"enum": ["popular", "trending"]}),
                        *_strings("category", "subcategory"), *paging])},
        "/api/v1/datasets/session-cost": {"get": _get(
            "cost per session (agent task) by app, model and turns", "analytics", "Report", security=_KEY_AUTH,
            errors=errors, parameters=[*_strings("app_slug", "model", "turn_range"), *paging])},
    }


def _console_paths() -> dict[str, Any]:
    """The web console's JSON routes (``tollway.console.data``): any key, scoped to its own traffic."""
    key = _query("key", "only this key id (admin; any other key always gets its own)")

    def get(summary: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
        return {"get": _get(summary, "console", {"type": "object"}, security=_KEY_AUTH, parameters=parameters,
                            errors=(400, 401, 403, 503))}

    return {
        "/": {"get": {"summary": "redirects to the web console", "tags": ["console"], "security": [],
                      "responses": {"307": {"description": "to /console"}}}},
        "/api/v1/console/activity": get("requests, tokens and cost per day", [_FROM, _TO, key]),
        "/api/v1/console/generations": get("the generation log, newest first", [
            _query("model", "only this model"), _query("app", "only this app (URL or title)"),
            _query("task", "only this task (session id)"), key,
            _query("before", "page back: generations created before this ISO 8601 time",
                   {"type": "string", "format": "date-time"}),
            _query("limit", "rows per page", {"type": "integer", "minimum": 1, "maximum": 500})]),
        "/api/v1/console/tasks": get("agent tasks (session ids) by size", [_FROM, _TO, key, _query(
            "top", "tasks to return", {"type": "integer", "minimum": 1, "maximum": 500})]),
        "/api/v1/console/providers": get("circuit state, uptime, latency and throughput per endpoint", []),
        "/api/v1/console/rankings": get("the Rankings page's reports in one answer (public with "
                                        "console.public_rankings)", [
            _query("period", "bucket size", {"enum": ["day", "week", "month"]}), _FROM, _TO, key,
            _query("top", "models per period", {"type": "integer", "minimum": 1, "maximum": 100})]),
    }


def _responses_paths(prefix: str) -> dict[str, Any]:
    """OpenAI's Responses API (``tollway.api.responses``): create, and the key's stored responses."""
    response_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
                   "description": "a stored response's id (X-Generation-Id)"}
    stored_errors = (400, 401, 404, 503)
    return {
        f"{prefix}/responses": _generate("OpenAI's Responses API, to any model", "ResponsesRequest", "Response",
                                         "generate"),
        f"{prefix}/responses/{{id}}": {
            "parameters": [response_id],
            "get": _get("one of the calling key's stored responses", "generate", "Response", security=_KEY_AUTH,
                        errors=stored_errors),
            "delete": _get("delete one of the calling key's stored responses", "generate", "ResponseDeleted",
                           security=_KEY_AUTH, errors=stored_errors)},
        f"{prefix}/responses/{{id}}/input_items": {"parameters": [response_id], "get": _get(
            "a stored response's input items, newest first by default", "generate", "ResponseItemList",
            security=_KEY_AUTH, errors=stored_errors, parameters=[
                _query("limit", "items per page", {"type": "integer", "minimum": 1, "maximum": 100}),
                _query("order", "asc or desc", {"enum": ["asc", "desc"]}),
                _query("after", "the item id to list after")])},
    }


def _admin_paths() -> dict[str, Any]:
    admin_errors = (400, 401, 403, 404, 503)

    def op(summary: str, response: str, *, body: str | None = None, status: str = "200",
           parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"summary": summary, "tags": ["admin"], "security": _ADMIN_AUTH,
                               "responses": {status: _json("OK", response), **_errors(*admin_errors)}}
        if body:
            out["requestBody"] = _body(body)
        if parameters:
            out["parameters"] = parameters
        return out

    include = _query("include_disabled", "true: list revoked keys too", {"type": "boolean"})
    return {
        "/api/v1/keys": {"get": op("list keys", "KeyList", parameters=[include]),
                         "post": op("create a key; the plain key is returned once", "KeyCreated", body="KeyCreate",
                                    status="201")},
        "/api/v1/keys/{id}": {"parameters": [_KEY_ID],
                              "get": op("one key", "KeyResponse"),
                              "patch": op("change a key (disabled: true revokes it)", "KeyResponse", body="KeyUpdate"),
                              "delete": op("revoke a key (its ledger history stays)", "KeyDeleted")},
        "/api/v1/keys/{id}/credits": {"parameters": [_KEY_ID],
                                      "post": op("top up: raise the key's limit by amount USD", "KeyResponse",
                                                 body="TopUp")},
        "/api/v1/keys/{id}/usage": {"parameters": [_KEY_ID],
                                    "get": op("spend per window and token totals", "KeyUsage")},
    }


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _with_url_errors(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation with a path or query parameter may answer 400 (e.g. a NUL byte in the URL,
    refused at the edge for all endpoints: ``tollway.api.inputs.nul_in_url``)."""
    for item in paths.values():
        for method, op in item.items():
            if method in _METHODS and (item.get("parameters") or op.get("parameters")):
                op["responses"].setdefault("400", _json("the URL is invalid; the message names the parameter",
                                                        "Error"))
    return paths


def _served_only(paths: dict[str, Any], served: frozenset[tuple[str, str]] | None) -> dict[str, Any]:
    """The documented operations the app routes ((METHOD, path) pairs); all of them when None."""
    if served is None:
        return paths
    kept: dict[str, Any] = {}
    for path, item in paths.items():
        operations = {m: op for m, op in item.items() if m in _METHODS and (m.upper(), path) in served}
        if operations:
            kept[path] = {k: v for k, v in item.items() if k not in _METHODS} | operations
    return kept


def served_operations(routes: list[Any]) -> frozenset[tuple[str, str]]:
    """(METHOD, path) of every Starlette ``Route`` among ``routes``."""
    return frozenset((method, route.path) for route in routes if isinstance(route, Route)
                     for method in (route.methods or ()) if method != "HEAD")


@functools.cache
def document(served: frozenset[tuple[str, str]] | None = None) -> dict[str, Any]:
    """The OpenAPI document for an app routing ``served`` (built once per route set)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "tollway", "version": __version__,
                 "description": "A self-hostable LLM API gateway: OpenAI- and Anthropic-compatible generation "
                                "endpoints to any configured model, metered into a ledger; OpenRouter-shaped "
                                "catalog, key and admin APIs; analytics over the ledger's rollups.  Money is "
                                "exact: every `tollway` object carries nano-dollar (1e-9 USD) integers."},
        "servers": [{"url": "/"}],
        "security": _KEY_AUTH,
        "tags": [{"name": n} for n in ("generate", "models", "keys", "ledger", "admin", "analytics", "console",
                                       "operations")],
        "paths": _served_only(_with_url_errors(_paths()), served),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a tollway key (sk-tw-...) "
                           "or the configured admin_key"},
                "x-api-key": {"type": "apiKey", "in": "header", "name": "x-api-key",
                              "description": "Anthropic-style alternative to the bearer header"},
            },
            "schemas": SCHEMAS,
        },
    }


@functools.cache
def _rendered(served: frozenset[tuple[str, str]]) -> bytes:
    return orjson.dumps(document(served))


async def openapi_json(request: Request) -> Response:
    """GET /openapi.json (no key needed: it describes the API, not anyone's data)."""
    return Response(_rendered(served_operations(request.app.routes)), media_type="application/json")
