"""Request parsing and response rendering shared by the endpoint modules."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tollway.auth import Principal
from tollway.errors import BadRequest, PayloadTooLarge
from tollway.gateway import Gateway, RequestMeta
from tollway.ledger.apps import parse_categories
from tollway.ledger.bounds import bound_text
from tollway.limits import has_limits


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is {int(declared)} bytes; the limit is {limit} "
                              "(config server.max_body_bytes)", code=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes "
                                  "(config server.max_body_bytes)", code=413)
        chunks.append(chunk)
    return b"".join(chunks)


# A body whose first key is "model" with a plain string value (no escapes), as Claude Code
# and Codex send it.  Only a hint for choosing how to parse the rest (see
# :func:`leading_model`): the model a request is routed and billed by is always the one the
# full parse reads.
_LEADING_MODEL = re.compile(rb'\{[ \t\r\n]*"model"[ \t\r\n]*:[ \t\r\n]*"([^"\\]{1,256})"')


def leading_model(raw: bytes) -> str | None:
    """The model id named by the body's first key, read without parsing the body; None when
    the first key is not ``"model"`` or its value is not a plain string."""
    match = _LEADING_MODEL.match(raw)
    return match.group(1).decode("utf-8", "replace") if match else None


class _Routed(Protocol):
    route: dict[str, Any]


R = TypeVar("R", bound=_Routed)


def read_for_passthrough(raw: bytes, principal: Principal, passes_through: Callable[[str], bool],
                         read: Callable[[bytes], R | None]) -> R | None:
    """``raw`` read by ``read`` (a pass-through reader that leaves the conversation raw) when the
    model it names first is one that ``passes_through`` (only endpoints of the client's wire
    format) and the key has no limits (a limited key's prompt bound reads the whole chat
    translation); None otherwise, for the ordinary parse.  Also None when a later "model" key
    names another model, which may not pass through."""
    model = leading_model(raw)
    if model is None or has_limits(principal.key) or not passes_through(model):
        return None
    parsed = read(raw)
    return parsed if parsed is not None and parsed.route["model"] == model else None


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """Parse the body once; a clear 400 if it is not a JSON object."""
    return json_object(await read_body(request, limit))


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` parsed; a clear 400 if it is not a JSON object."""
    if not raw:
        raise BadRequest("request body is empty: send a JSON object", code=400)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code=400) from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object", code=400)
    return body


def request_meta(request: Request, api: str) -> RequestMeta:
    """Attribution headers, bounded to their ledger columns where they enter."""
    headers = request.headers
    app = headers.get("http-referer") or headers.get("referer")
    title = headers.get("x-openrouter-title") or headers.get("x-title")
    session = headers.get("x-session-id")
    # A known agent CLI (catalog/data/agents.json) names the app and the task when the
    # request itself does not.
    categories = tuple(parse_categories(headers.get("x-openrouter-categories")))
    agent = gateway_of(request).agents.match(headers.get("user-agent"))
    if agent is not None:
        if not (app or title):
            title = agent.name
            categories = categories or agent.categories
        session = session or agent.session_id(headers)
    return RequestMeta(app=bound_text("app", app), app_title=bound_text("app_title", title),
                       session_id=bound_text("session_id", session), api=api, categories=categories)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json",
                    headers=headers)


class JSONBytesResponse:
    """A JSON body already serialised: two ASGI messages, nothing else.

    Used on the chat hot path, where Starlette's Response (header normalisation,
    background tasks) cost a measurable share of a proxied request.
    """

    __slots__ = ("body", "headers")

    def __init__(self, body: bytes, extra_headers: list[tuple[bytes, bytes]]) -> None:
        self.body = body
        self.headers = [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()), *extra_headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


async def ledger_json(request: Request, work: Callable[[Any], dict[str, Any]],
                      invalid: tuple[type[Exception], ...], code: int | None = None) -> Response:
    """Run ``work(connection)`` on the ledger in a thread and answer its document as JSON;
    the ``invalid`` errors (a query the caller got wrong) become 400s with their message."""
    engine = gateway_of(request).engine

    def call() -> dict[str, Any]:
        with engine.connect() as conn:
            return work(conn)

    try:
        doc = await run_in_threadpool(call)
    except invalid as exc:
        raise BadRequest(str(exc), code=code) from None
    return Response(orjson.dumps(doc), media_type="application/json")
