"""The gateway: one object that owns what lives as long as the server (HTTP client,
database engine, ledger writer, catalog, router, metrics) and runs a generation from
an authenticated request to a metered record.

Handlers call :meth:`Gateway.chat`; it plans attempts, calls adapters in order keeping
every failure, and meters the result in a ``finally`` so no generation goes unrecorded.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tollway.adapters import adapter_registry
from tollway.adapters.base import Adapter, CallContext, MidStreamError, StreamState, Target
from tollway.adapters.http import ClientTimeouts
from tollway.auth import KeyCache, Principal
from tollway.catalog import Catalog, build_catalog
from tollway.config import Settings
from tollway.errors import AllAttemptsFailed, BadRequest, TollwayError, UpstreamError
from tollway.ledger.db import create_db_engine, migrate
from tollway.ledger.records import GenerationRecord
from tollway.ledger.schema import utcnow
from tollway.ledger.writer import BatchHook, LedgerWriter
from tollway.metering import Usage, estimate_prompt_tokens
from tollway.metrics import Metrics
from tollway.routing import Router
from tollway.streaming import estimate_stream_usage, final_chunks, midstream_error_chunk, render_usage


@dataclass(slots=True)
class RequestMeta:
    """What the request says about its origin, for attribution in the ledger."""

    app: str | None = None
    app_title: str | None = None
    session_id: str | None = None
    api: str = "chat"


@dataclass(slots=True)
class ChatOutcome:
    """Either a complete payload or a stream of SSE bytes, plus the generation id."""

    generation_id: str
    payload: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None


@dataclass(slots=True)
class _Run:
    """Book-keeping of one generation while it is in progress."""

    generation_id: str
    principal: Principal
    body: dict[str, Any]
    meta: RequestMeta
    started: float
    created_at: Any
    attempts: list[dict[str, Any]] = field(default_factory=list)


def new_generation_id() -> str:
    return "gen-" + str(int(time.time())) + "-" + secrets.token_hex(10)


class Gateway:
    def __init__(self, settings: Settings, *, hooks: tuple[BatchHook, ...] = ()) -> None:
        self.settings = settings
        self.catalog: Catalog = build_catalog(settings)
        self.router = Router(self.catalog)
        self.adapters: dict[str, Adapter] = adapter_registry()
        self.engine = create_db_engine(settings.database)
        self.writer = LedgerWriter(self.engine, batch_size=settings.ledger.batch_size,
                                   flush_interval_s=settings.ledger.flush_interval_ms / 1000,
                                   hooks=hooks)
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        self.keys = KeyCache(self.engine, settings.server.key_cache_ttl_s, admin)
        self.metrics = Metrics()
        self.timeouts = ClientTimeouts.from_settings(settings.timeouts)
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        migrate(self.engine)
        self.writer.start()
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300,
                                         keepalive_timeout=60)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                              skip_auto_headers=("User-Agent",))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        # Drain the ledger: every answered generation is written before we exit.
        await asyncio.to_thread(self.writer.close)
        self.engine.dispose()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("gateway not started")
        return self._session

    # -- chat completions ---------------------------------------------------------------

    async def chat(self, principal: Principal, body: dict[str, Any], meta: RequestMeta) -> ChatOutcome:
        validate_chat_body(body)
        run = _Run(generation_id=new_generation_id(), principal=principal, body=body, meta=meta,
                   started=time.monotonic(), created_at=utcnow())
        if meta.session_id is None and isinstance(body.get("session_id"), str):
            meta.session_id = body["session_id"]
        try:
            targets = self.router.plan(body, principal)
        except TollwayError as exc:
            self._record_failure(run, exc, model=str(body.get("model") or ""))
            raise
        if body.get("stream") is True:
            return await self._start_stream(run, targets)
        return ChatOutcome(generation_id=run.generation_id, payload=await self._complete(run, targets))

    def _context(self, run: _Run, target: Target) -> CallContext:
        return CallContext(generation_id=run.generation_id, model_id=target.model.id,
                           created=int(time.time()), session=self.session, timeouts=self.timeouts)

    async def _complete(self, run: _Run, targets: list[Target]) -> dict[str, Any]:
        last: UpstreamError | None = None
        for target in targets:
            adapter = self.adapters[target.provider.kind]
            attempt_started = time.monotonic()
            try:
                completion = await adapter.complete(target, run.body, self._context(run, target))
            except UpstreamError as exc:
                last = exc
                self._note_attempt(run, target, exc, attempt_started)
                if not exc.retryable:
                    break
                continue
            self._note_attempt(run, target, None, attempt_started)
            usage = completion.usage
            if usage is None:
                usage = Usage(prompt_tokens=estimate_prompt_tokens(run.body),
                              completion_tokens=_completion_tokens_estimate(completion.payload),
                              estimated=True)
            cost = self.catalog.price_table(target.model.id, target.endpoint).cost_nano(usage)
            completion.payload["usage"] = render_usage(usage, cost)
            latency = time.monotonic() - run.started
            self._submit(run, target, usage, cost, status="success", http_status=200,
                         finish_reason=completion.finish_reason,
                         native_finish_reason=completion.native_finish_reason,
                         upstream_id=completion.upstream_id, latency_s=latency, ttft_s=None,
                         streamed=False)
            return completion.payload
        raise self._all_failed(run, targets, last)

    async def _start_stream(self, run: _Run, targets: list[Target]) -> ChatOutcome:
        last: UpstreamError | None = None
        for target in targets:
            adapter = self.adapters[target.provider.kind]
            state = StreamState()
            attempt_started = time.monotonic()
            iterator = adapter.stream(target, run.body, self._context(run, target), state)
            try:
                async with asyncio.timeout(self.timeouts.first_byte_s):
                    first = await anext(iterator)
            except StopAsyncIteration:
                exc = UpstreamError(f"provider {target.provider.name} sent an empty stream",
                                    provider=target.provider.name, retryable=True)
            except TimeoutError:
                await iterator.aclose()
                exc = UpstreamError(f"provider {target.provider.name} sent no first byte within "
                                    f"{self.timeouts.first_byte_s:g} s", provider=target.provider.name,
                                    retryable=True)
            except UpstreamError as err:
                exc = err
            else:
                self._note_attempt(run, target, None, attempt_started)
                return ChatOutcome(generation_id=run.generation_id,
                                   stream=self._relay(run, target, state, first, iterator))
            last = exc
            self._note_attempt(run, target, exc, attempt_started)
            if not exc.retryable:
                break
        raise self._all_failed(run, targets, last)

    async def _relay(self, run: _Run, target: Target, state: StreamState, first: bytes,
                     iterator: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Yield the stream to the client; meter it whatever happens (done, error, hang-up)."""
        status, error, cancelled, http_status = "success", None, False, 200
        prices = self.catalog.price_table(target.model.id, target.endpoint)
        try:
            yield first
            try:
                async for chunk in iterator:
                    yield chunk
            except MidStreamError as exc:
                status, error, http_status = "error", exc.message, 502
                state.finish_reason = "error"
                yield midstream_error_chunk(run.generation_id, target, exc)
            usage = self._stream_usage(run, state)
            yield final_chunks(run.generation_id, target, render_usage(usage, prices.cost_nano(usage)))
        except (asyncio.CancelledError, GeneratorExit):
            status, cancelled = "cancelled", True
            raise
        finally:
            if hasattr(iterator, "aclose"):
                await iterator.aclose()
            usage = self._stream_usage(run, state)
            ttft = state.first_byte_at - run.started if state.first_byte_at else None
            self._submit(run, target, usage, prices.cost_nano(usage), status=status,
                         http_status=499 if cancelled else http_status, finish_reason=state.finish_reason,
                         native_finish_reason=state.native_finish_reason, upstream_id=state.upstream_id,
                         latency_s=time.monotonic() - run.started, ttft_s=ttft, streamed=True,
                         cancelled=cancelled, error=error)

    def _stream_usage(self, run: _Run, state: StreamState) -> Usage:
        if state.usage is not None:
            return state.usage
        return estimate_stream_usage(state, estimate_prompt_tokens(run.body))

    # -- bookkeeping ----------------------------------------------------------------------

    def _note_attempt(self, run: _Run, target: Target, exc: UpstreamError | None, started: float) -> None:
        run.attempts.append({
            "provider": target.provider.name, "model": target.model.id,
            "upstream_model": target.endpoint.model,
            "status": 200 if exc is None else (exc.upstream_status or exc.status),
            "latency_ms": int((time.monotonic() - started) * 1000),
            **({"message": exc.message} if exc is not None else {}),
        })

    def _all_failed(self, run: _Run, targets: list[Target], last: UpstreamError | None) -> TollwayError:
        assert last is not None
        if len(run.attempts) == 1:
            error: TollwayError = last
        else:
            summary = "; ".join(f"{a['provider']}: {a['status']} {a.get('message', '')}".strip()
                                for a in run.attempts)
            error = AllAttemptsFailed(f"all {len(run.attempts)} attempts failed: {summary}",
                                      attempts=run.attempts, last=last)
        self._record_failure(run, error, model=targets[0].model.id, target=targets[-1])
        return error

    def _record_failure(self, run: _Run, exc: TollwayError, *, model: str, target: Target | None = None) -> None:
        self.metrics.error(exc.status)
        self.writer.submit(GenerationRecord(
            id=run.generation_id, key_id=run.principal.key_id, created_at=run.created_at,
            model=model[:200] or "(none)", provider=target.provider.name if target else None,
            upstream_model=target.endpoint.model if target else None, app=run.meta.app,
            app_title=run.meta.app_title, session_id=run.meta.session_id, status="error",
            http_status=exc.status, streamed=run.body.get("stream") is True, api=run.meta.api,
            latency_ms=int((time.monotonic() - run.started) * 1000), error=exc.message[:2000],
            attempts=run.attempts or None,
        ))

    def _submit(self, run: _Run, target: Target, usage: Usage, cost: int, *, status: str,
                http_status: int, finish_reason: str | None, native_finish_reason: str | None,
                upstream_id: str | None, latency_s: float, ttft_s: float | None, streamed: bool,
                cancelled: bool = False, error: str | None = None) -> None:
        self.writer.submit(GenerationRecord(
            id=run.generation_id, key_id=run.principal.key_id, created_at=run.created_at,
            model=target.model.id, provider=target.provider.name, upstream_model=target.endpoint.model,
            upstream_id=upstream_id, app=run.meta.app, app_title=run.meta.app_title,
            session_id=run.meta.session_id, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, cached_tokens=usage.cached_tokens,
            cache_write_tokens=usage.cache_write_tokens, reasoning_tokens=usage.reasoning_tokens,
            cost_nanousd=cost, status=status, http_status=http_status, finish_reason=finish_reason,
            native_finish_reason=native_finish_reason, streamed=streamed, cancelled=cancelled,
            estimated=usage.estimated, latency_ms=int(latency_s * 1000),
            ttft_ms=int(ttft_s * 1000) if ttft_s is not None else None, api=run.meta.api, error=error,
            attempts=run.attempts if len(run.attempts) > 1 else None,
        ))
        self.metrics.record(model=target.model.id, provider=target.provider.name, status=status,
                            latency_s=latency_s, ttft_s=ttft_s, prompt_tokens=usage.prompt_tokens,
                            completion_tokens=usage.completion_tokens, cost_nano=cost)


def _completion_tokens_estimate(payload: dict[str, Any]) -> int:
    from tollway.metering import estimate_tokens_from_bytes

    total = 0
    for choice in payload.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            total += estimate_tokens_from_bytes(len(message["content"].encode("utf-8", "replace")))
    return total


def validate_chat_body(body: dict[str, Any]) -> None:
    """Reject what no provider would accept, naming the field and the fix (400)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects", code=400)
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a string 'role' "
                             "(system, user, assistant or tool)", code=400)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be true or false", code=400)
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise BadRequest(f"'{name}' must be a positive integer", code=400)
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or not low <= value <= high):
            raise BadRequest(f"'{name}' must be a number between {low} and {high}", code=400)
