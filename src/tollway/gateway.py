"""The gateway: one object that owns what lives as long as the server (HTTP client,
database engine, ledger writer, catalog, router, metrics) and runs a generation from
an authenticated request to a metered record.

Handlers call :meth:`Gateway.chat`, :meth:`Gateway.messages` or :meth:`Gateway.embeddings`.
Each opens a run (routing plan, key limits admitted), tries the planned attempts in order
keeping every failure, and meters the result; a stream is metered in its relay's
``finally``, so a generation that ends in any way (done, upstream error, client hang-up)
is recorded exactly once.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tollway.adapters import adapter_registry
from tollway.adapters.anthropic import AnthropicAdapter  # issue 5: /v1/messages pass-through
from tollway.adapters.base import (
    Adapter,
    CallContext,
    Completion,
    Embedder,
    MidStreamError,
    StreamState,
    Target,
)
from tollway.adapters.http import ClientTimeouts
from tollway.adapters.openai import OpenAIAdapter
from tollway.auth import KeyCache, Principal
from tollway.catalog import Catalog, build_catalog
from tollway.catalog.agents import AgentDirectory, load_agents  # issue 12: agent attribution
from tollway.config import ProviderConfig, Settings
from tollway.console.sessions import build_sessions
from tollway.embeddings import estimate_input_tokens, validate_embeddings_body  # issue 5
from tollway.errors import AllAttemptsFailed, BadRequest, ServiceUnavailable, TollwayError, UpstreamError
from tollway.ledger.apps import record_app_categories
from tollway.ledger.bounds import bound_text, bounded_record
from tollway.ledger.db import create_db_engine, migrate
from tollway.ledger.journal import Journal, default_journal_dir
from tollway.ledger.records import GenerationRecord
from tollway.ledger.rollups import apply_rollups
from tollway.ledger.schema import utcnow
from tollway.ledger.writer import BatchHook, LedgerWriter
from tollway.limits import Hold, Limiter, has_limits
from tollway.limits.capping import CHAT_OUTPUT_FIELDS, MESSAGES_OUTPUT_FIELDS, NO_OUTPUT, cap_output
from tollway.messages import (  # issue 5: /v1/messages
    EventWriter,
    MessagesRequest,
    error_event,
    to_anthropic_message,
)
from tollway.metering import (
    Usage,
    estimate_prompt_tokens,
    nano_to_usd,
)
from tollway.metrics import Metrics
from tollway.process_tuning import tune_for_serving
from tollway.redaction import RedactingFilter, Redactor, install_log_redaction, remove_log_redaction
from tollway.responses.native import native_provider
from tollway.routing import Router, build_health
from tollway.streaming import final_chunks, midstream_error_chunk, render_usage, stream_usage, translate_stream


@dataclass(slots=True)
class RequestMeta:
    """What the request says about its origin, for attribution in the ledger."""

    app: str | None = None
    app_title: str | None = None
    session_id: str | None = None
    api: str = "chat"
    extra: dict[str, Any] | None = None  # notes for the ledger record's extra (e.g. dropped tools)
    categories: tuple[str, ...] = ()  # X-OpenRouter-Categories (tollway.ledger.apps)


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
    hold: Hold | None = None  # the key's credit/rate-limit claim, settled when the run ends
    # The whole chat body when ``body`` is only a routing view (a Messages pass-through):
    # read for local token estimates, which need every message.
    full_body: Callable[[], dict[str, Any]] | None = None

    def prompt_estimate(self) -> int:
        return estimate_prompt_tokens(self.full_body() if self.full_body is not None else self.body)


# A stream opener returns the stream and what closes it (given the final usage and cost).
Closer = Callable[[Usage, int], bytes]
_Opened = tuple[AsyncIterator[bytes], Closer | None]


def new_generation_id() -> str:
    # 80 bits from the OS: the id is the ledger's primary key, so it must never repeat, and
    # the interpreter's shared PRNG can be reseeded by anything in the process (Hypothesis
    # does, and repeated ids were dropped as duplicates); about a microsecond a request.
    return f"gen-{int(time.time())}-{os.urandom(10).hex()}"


class Gateway:
    def __init__(self, settings: Settings, *, hooks: tuple[BatchHook, ...] = (),
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        # The ledger's timestamp source (naive UTC).  Only `tollway demo` replaces it, to
        # compress simulated weeks into seconds; a server always uses the real clock.
        self.clock = clock
        self.catalog: Catalog = build_catalog(settings)
        self.agents: AgentDirectory = load_agents()
        self.health = build_health(settings.routing, settings.redis)
        self.router = Router(self.catalog, settings.routing, self.health)
        # The models API (api/models.py) reads endpoint uptime/latency/throughput through this.
        self.endpoint_health = self.health.endpoint_health
        self.adapters: dict[str, Adapter] = adapter_registry()
        # The models only Anthropic-format, only OpenAI chat, or only Responses-native endpoints
        # serve: every Messages and Responses request asks, to choose how to read its body, and
        # the catalog never changes.
        self._anthropic_only = self._served_only_by(lambda p: isinstance(self.adapters.get(p.kind), AnthropicAdapter))
        self._chat_only = self._served_only_by(lambda p: isinstance(self.adapters.get(p.kind), OpenAIAdapter))
        self._native_only = self._served_only_by(native_provider)
        self.engine = create_db_engine(settings.database)
        self.writer = LedgerWriter(self.engine, batch_size=settings.ledger.batch_size,
                                   flush_interval_s=settings.ledger.flush_interval_ms / 1000,
                                   # Rollups are kept up to date in the same transaction as
                                   # the generations, so reports never read the raw ledger.
                                   hooks=(apply_rollups, record_app_categories, *hooks),
                                   journal=Journal(journal_dir(settings)),
                                   write_ahead=settings.ledger.write_ahead)
        admin = settings.admin_key.get_secret_value() if settings.admin_key else None
        sessions = build_sessions(settings.console.session_ttl_s, settings.console.max_sessions, settings.redis)
        self.keys = KeyCache(self.engine, settings.server.key_cache_ttl_s, admin, sessions,
                             stale_s=settings.server.key_cache_stale_s)
        self.metrics = Metrics()
        self.metrics.watch_ledger(self.writer.health)
        self.timeouts = ClientTimeouts.from_settings(settings.timeouts)
        self.limits = Limiter(settings, self.engine)
        # Upstream errors are redacted where they enter (the attempt loops, the relay); logs by a filter.
        self.redactor = Redactor.from_settings(settings, self.catalog.providers.values())
        self._log_redaction: RedactingFilter | None = None
        self._session: aiohttp.ClientSession | None = None
        self.malloc_tuned = False  # set by start(): tollway.process_tuning

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._log_redaction = install_log_redaction(self.redactor)
        migrate(self.engine)
        self.writer.start()
        await self.limits.start()  # settlements an earlier process journaled are applied
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300,
                                         keepalive_timeout=60)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True,
                                              skip_auto_headers=("User-Agent",))
        # The GC and malloc of a process that relays large bodies (tollway.process_tuning).
        self.malloc_tuned = tune_for_serving(self.settings.server.malloc_keep_bytes)

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.limits.close()  # pending settlements first: they may need the DB
        await asyncio.to_thread(self.health.close)  # the last batch of shared health state
        # Drain the ledger: every answered generation is written before we exit.
        await asyncio.to_thread(self.writer.close)
        self.engine.dispose()
        if self._log_redaction is not None:
            remove_log_redaction(self._log_redaction)
            self._log_redaction = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("gateway not started")
        return self._session

    # -- the three APIs ------------------------------------------------------------------
    # Chat completions, Anthropic Messages and embeddings share one run lifecycle
    # (_open_run), one attempt loop per mode (_attempt_complete, _attempt_stream) and one
    # relay (_relay): routing, stickiness, deadlines, health, limits and metering can't
    # drift between them.  What differs is passed in: how to call a target, how to close
    # a stream, how to say an error mid-stream.

    async def chat(self, principal: Principal, body: dict[str, Any], meta: RequestMeta) -> ChatOutcome:
        validate_chat_body(body)
        run, targets = await self._open_run(principal, body, meta)
        if body.get("stream") is True:

            def open_chat(target: Target, ctx: CallContext, state: StreamState) -> _Opened:
                stream = self.adapters[target.provider.kind].stream(target, body, ctx, state)

                def close(usage: Usage, cost: int) -> bytes:
                    return final_chunks(run.generation_id, target, self._usage_doc(target, usage, cost))

                return stream, close

            return await self._attempt_stream(
                run, targets, open_chat,
                lambda target, exc: midstream_error_chunk(run.generation_id, target, exc))
        target, completion, usage, cost = await self._attempt_complete(
            run, targets, lambda t, ctx: self.adapters[t.provider.kind].complete(t, body, ctx))
        completion.payload["usage"] = self._usage_doc(target, usage, cost)
        return ChatOutcome(generation_id=run.generation_id, payload=completion.payload)

    async def messages(self, principal: Principal, request: MessagesRequest, meta: RequestMeta,
                       forward_headers: dict[str, str] | None = None, query: str = "") -> ChatOutcome:
        """An Anthropic Messages call: passed straight through to providers that speak Anthropic
        (with the client's beta headers and query string), translated to OpenAI chat for the
        others (what has no translation noted in the ledger record); the payload or events are
        Anthropic's."""
        validate_chat_body(request.route)
        # Routing reads the request's routing view (no conversation translated); a limited
        # key's reservation bounds the whole prompt, so it reads the full chat translation.
        limited = has_limits(principal.key)
        run, targets = await self._open_run(principal, request.openai if limited else request.route, meta)
        run.full_body = request.estimate_body  # local token estimates, built only if needed
        if run.hold is not None and run.hold.output_cap is not None:
            cap_output(request.anthropic, run.hold.output_cap, MESSAGES_OUTPUT_FIELDS)  # the pass-through body
        headers = forward_headers or {}
        as_sent, notes = meta.extra, request.translation_notes
        translated_extra = {**(as_sent or {}), **notes} if notes else as_sent

        def passthrough_for(target: Target, ctx: CallContext) -> AnthropicAdapter | None:
            passthrough = self._passthrough(target)
            # The record describes the attempt that answers, so each attempt sets its note.
            run.meta.extra = as_sent if passthrough is not None else translated_extra
            if passthrough is not None:
                ctx.extra_headers = headers
            return passthrough

        if request.stream:

            def open_messages(target: Target, ctx: CallContext, state: StreamState) -> _Opened:
                passthrough = passthrough_for(target, ctx)
                if passthrough is not None:
                    return passthrough.passthrough_stream(target, request.anthropic, ctx, state, query), None
                writer = EventWriter(run.generation_id, target.model.id)
                adapter = self.adapters[target.provider.kind]

                def close(usage: Usage, cost: int) -> bytes:
                    # After a mid-stream error the error event was the end of the stream.
                    return b"" if state.finish_reason == "error" else writer.end(usage, state.finish_reason)

                return translate_stream(adapter, target, request.openai, ctx, state, writer), close

            return await self._attempt_stream(run, targets, open_messages,
                                              lambda target, exc: error_event(exc.message))

        async def call(target: Target, ctx: CallContext) -> Completion:
            passthrough = passthrough_for(target, ctx)
            if passthrough is not None:
                return await passthrough.passthrough_complete(target, request.anthropic, ctx, query)
            return await self.adapters[target.provider.kind].complete(target, request.openai, ctx)

        target, completion, usage, _cost = await self._attempt_complete(run, targets, call)
        payload = completion.payload if self._passthrough(target) is not None else \
            to_anthropic_message(completion.payload, usage)
        return ChatOutcome(generation_id=run.generation_id, payload=payload)

    async def count_message_tokens(self, principal: Principal, request: MessagesRequest,
                                   forward_headers: dict[str, str], query: str = "") -> tuple[int, str]:
        """``/v1/messages/count_tokens``: (input tokens, ``"upstream"`` or ``"estimate"``).

        The first planned endpoint counts when its wire format has a count endpoint
        (Anthropic); otherwise, or when that endpoint is unavailable, a local estimate.
        Nothing is generated, so nothing is metered.
        """
        targets = self.router.plan(request.route, principal)
        target = targets[0]
        passthrough = self._passthrough(target)
        if passthrough is not None:
            ctx = CallContext(generation_id=new_generation_id(), model_id=target.model.id,
                              created=int(time.time()), session=self.session, timeouts=self.timeouts,
                              extra_headers=forward_headers)
            try:
                return await passthrough.count_tokens(target, request.anthropic, ctx, query), "upstream"
            except UpstreamError as exc:
                if not exc.retryable:
                    raise  # the caller's own 4xx: the request is wrong, an estimate would hide it
        return estimate_prompt_tokens(request.openai), "estimate"

    async def embeddings(self, principal: Principal, body: dict[str, Any], meta: RequestMeta) -> dict[str, Any]:
        """``POST /v1/embeddings``: routed like chat, metered at the endpoint's prompt price."""
        validate_embeddings_body(body)
        run, targets = await self._open_run(principal, body, meta, output_fields=NO_OUTPUT)

        async def call(target: Target, ctx: CallContext) -> Completion:
            adapter = self.adapters[target.provider.kind]
            if not isinstance(adapter, Embedder):
                raise UpstreamError(f"provider {target.provider.name} ({target.provider.kind} format) "
                                    "offers no embeddings", provider=target.provider.name)
            result = await adapter.embed(target, body, ctx)
            usage = result.usage or Usage(prompt_tokens=estimate_input_tokens(body), estimated=True)
            return Completion(payload=result.payload, finish_reason=None, native_finish_reason=None,
                              upstream_id=None,
                              usage=Usage(prompt_tokens=usage.prompt_tokens, estimated=usage.estimated))

        _target, completion, usage, cost = await self._attempt_complete(run, targets, call)
        payload = completion.payload
        payload["usage"] = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens,
                            "cost": nano_to_usd(cost),
                            "tollway": {"cost_nanousd": cost, "estimated": usage.estimated}}
        payload["id"] = run.generation_id
        return payload

    def _usage_doc(self, target: Target, usage: Usage, cost: int) -> dict[str, Any]:
        prompt_cost, _ = self.catalog.price_table(target.model.id, target.endpoint).split_nano(usage)
        return render_usage(usage, cost, prompt_cost)

    def _served_only_by(self, accepts: Callable[[ProviderConfig], bool]) -> frozenset[str]:
        """The ids of the models whose active endpoints are all at providers that ``accepts``."""
        return frozenset(model_id for model_id in self.catalog.models
                         if self.catalog.served_only_by(model_id, accepts))

    def passes_messages_through(self, model_id: str) -> bool:
        """Whether a Messages request for ``model_id`` can only go to Anthropic-format endpoints
        (a hint for how to read its body: a fallback to another format still works)."""
        return model_id in self._anthropic_only

    def translates_messages_to_chat(self, model_id: str) -> bool:
        """Whether a Messages request for ``model_id`` can only go to OpenAI chat endpoints (a
        hint: its chat translation is then built as the request is checked)."""
        return model_id in self._chat_only

    def passes_responses_through(self, model_id: str) -> bool:
        """Whether a Responses request for ``model_id`` can only go to Responses-native endpoints
        (a hint for how to read its body, as :meth:`passes_messages_through` is for Messages)."""
        return model_id in self._native_only

    def _passthrough(self, target: Target) -> AnthropicAdapter | None:
        adapter = self.adapters[target.provider.kind]
        return adapter if isinstance(adapter, AnthropicAdapter) else None

    async def _open_run(self, principal: Principal, body: dict[str, Any], meta: RequestMeta,
                        output_fields: tuple[str, ...] = CHAT_OUTPUT_FIELDS) -> tuple[_Run, list[Target]]:
        """A run for ``body`` (OpenAI-shaped), its planned targets, and the key's limits admitted
        (for a limited key, ``body``'s output cap is lowered to what was reserved)."""
        if self.settings.ledger.on_failure == "refuse" and not self.writer.metering_possible():
            raise ServiceUnavailable("the ledger cannot record generations right now (database unreachable "
                                     "and journal not writable, or the ledger writer stopped), so tollway "
                                     "refuses to serve unmetered; see GET /health (config ledger.on_failure)",
                                     code=503)
        run = _Run(generation_id=new_generation_id(), principal=principal, body=body, meta=meta,
                   started=time.monotonic(), created_at=self.clock())
        if meta.session_id is None and isinstance(body.get("session_id"), str):
            meta.session_id = bound_text("session_id", body["session_id"])
        try:
            targets = self.router.plan(body, principal)
        except TollwayError as exc:
            self._record_failure(run, exc, model=str(body.get("model") or ""))
            raise
        if has_limits(principal.key):
            assert principal.key is not None
            try:
                run.hold = await self.limits.admit(principal.key, body, targets, self.catalog,
                                                   now=run.created_at, output_fields=output_fields)
            except TollwayError as exc:
                self._record_failure(run, exc, model=targets[0].model.id)
                raise
            if run.hold.output_cap is not None:
                cap_output(body, run.hold.output_cap, output_fields)  # the upstream makes no more
        return run, targets

    def _context(self, run: _Run, target: Target) -> CallContext:
        return CallContext(generation_id=run.generation_id, model_id=target.model.id,
                           created=int(time.time()), session=self.session, timeouts=self.timeouts)

    def _sticky(self, run: _Run, targets: list[Target]) -> tuple[list[Target], bytes | None]:
        # Sticky routing only matters with a choice to make; one endpoint skips the hashing.
        session = self.router.session_key(run.body, run.meta.session_id, run.principal.key_id) \
            if len(targets) > 1 else None
        return self.router.stick(targets, session), session

    async def _attempt_complete(self, run: _Run, targets: list[Target],
                                call: Callable[[Target, CallContext], Awaitable[Completion]],
                                ) -> tuple[Target, Completion, Usage, int]:
        """Try ``call`` on each target in order until one answers; meter that answer."""
        last: UpstreamError | None = None
        targets, session = self._sticky(run, targets)
        deadline = run.started + self.settings.timeouts.total
        for n, target in enumerate(targets):
            attempt_started = time.monotonic()
            try:
                if n == 0:
                    # aiohttp's own total timeout bounds the first attempt: no extra timer.
                    completion = await call(target, self._context(run, target))
                else:
                    async with asyncio.timeout_at(self._loop_deadline(deadline)):
                        completion = await call(target, self._context(run, target))
            except TimeoutError:
                last = self._deadline_error(target)
                self._note_attempt(run, target, last, attempt_started)
                break
            except UpstreamError as exc:
                self.redactor.scrub_error(exc)
                last = exc
                self._note_attempt(run, target, exc, attempt_started)
                if not exc.retryable:
                    break
                continue
            self._note_attempt(run, target, None, attempt_started)
            self.router.remember(targets, target, session)
            usage = completion.usage
            if usage is None:
                usage = Usage(prompt_tokens=run.prompt_estimate(),
                              completion_tokens=_completion_tokens_estimate(completion.payload),
                              estimated=True)
            self.health.record_throughput((target.model.id, target.provider.name),
                                          usage.completion_tokens, time.monotonic() - attempt_started)
            cost = self.catalog.price_table(target.model.id, target.endpoint).cost_nano(usage)
            self._submit(run, target, usage, cost, status="success", http_status=200,
                         finish_reason=completion.finish_reason,
                         native_finish_reason=completion.native_finish_reason,
                         upstream_id=completion.upstream_id, latency_s=time.monotonic() - run.started,
                         ttft_s=None, streamed=False)
            return target, completion, usage, cost
        raise self._all_failed(run, targets, last)

    async def _attempt_stream(self, run: _Run, targets: list[Target],
                              open_stream: Callable[[Target, CallContext, StreamState], _Opened],
                              error_chunk: Callable[[Target, MidStreamError], bytes]) -> ChatOutcome:
        """Open streams in order until one yields its first bytes; then relay that one."""
        last: UpstreamError | None = None
        targets, session = self._sticky(run, targets)
        deadline = run.started + self.settings.timeouts.total
        for target in targets:
            state = StreamState()
            attempt_started = time.monotonic()
            # Before the first byte a stream can still fail over: bound the wait by the
            # first-byte timeout and by what is left of the overall deadline.
            wait = min(self.timeouts.first_byte_s, deadline - attempt_started)
            iterator, close = open_stream(target, self._context(run, target), state)
            try:
                async with asyncio.timeout(max(wait, 0.0)):
                    first = await anext(iterator)
            except StopAsyncIteration:
                exc = UpstreamError(f"provider {target.provider.name} sent an empty stream",
                                    provider=target.provider.name, retryable=True)
            except TimeoutError:
                await _aclose(iterator)
                if wait < self.timeouts.first_byte_s:
                    exc = self._deadline_error(target)
                else:
                    exc = UpstreamError(f"provider {target.provider.name} sent no first byte within "
                                        f"{self.timeouts.first_byte_s:g} s", provider=target.provider.name,
                                        retryable=True)
            except UpstreamError as err:
                self.redactor.scrub_error(err)
                exc = err
            else:
                self._note_attempt(run, target, None, attempt_started)
                self.router.remember(targets, target, session)
                return ChatOutcome(generation_id=run.generation_id,
                                   stream=self._relay(run, target, state, first, iterator, close, error_chunk))
            last = exc
            self._note_attempt(run, target, exc, attempt_started)
            if not exc.retryable:
                break
        raise self._all_failed(run, targets, last)

    def _loop_deadline(self, deadline: float) -> float:
        """A ``time.monotonic()`` deadline on the event loop's clock."""
        return asyncio.get_running_loop().time() + (deadline - time.monotonic())

    def _deadline_error(self, target: Target) -> UpstreamError:
        total = self.settings.timeouts.total
        # Not retryable: the caller's overall budget is spent, another attempt can't fit.
        return UpstreamError(f"overall deadline of {total:g} s (config timeouts.total) reached while "
                             f"waiting for provider {target.provider.name}", provider=target.provider.name,
                             retryable=False)

    def _observe_stream(self, target: Target, state: StreamState, usage: Usage, status: str) -> None:
        """Feed a finished stream to endpoint health: mid-stream failures, tokens per second."""
        key = (target.model.id, target.provider.name)
        if status == "error":
            self.health.record(key, False)
        elif status == "success" and state.first_byte_at is not None:
            self.health.record_throughput(key, usage.completion_tokens, time.monotonic() - state.first_byte_at)

    async def _relay(self, run: _Run, target: Target, state: StreamState, first: bytes,
                     iterator: AsyncIterator[bytes], close: Closer | None,
                     error_chunk: Callable[[Target, MidStreamError], bytes]) -> AsyncIterator[bytes]:
        """Yield the stream to the client; meter it whatever happens (done, error, hang-up)."""
        status, error, cancelled, http_status = "success", None, False, 200
        prices = self.catalog.price_table(target.model.id, target.endpoint)
        recorded = False

        def record() -> tuple[Usage, int]:
            nonlocal recorded
            recorded = True
            usage = self._stream_usage(run, state)
            cost = prices.cost_nano(usage)
            self._observe_stream(target, state, usage, status)
            ttft = state.first_byte_at - run.started if state.first_byte_at else None
            self._submit(run, target, usage, cost, status=status,
                         http_status=499 if cancelled else http_status, finish_reason=state.finish_reason,
                         native_finish_reason=state.native_finish_reason, upstream_id=state.upstream_id,
                         latency_s=time.monotonic() - run.started, ttft_s=ttft, streamed=True,
                         cancelled=cancelled, error=error)
            return usage, cost

        try:
            yield first
            failure = b""
            try:
                async for chunk in iterator:
                    yield chunk
            except MidStreamError as exc:
                exc.message = self.redactor.redact(exc.message)
                status, error, http_status = "error", exc.message, 502
                state.finish_reason = "error"
                failure = error_chunk(target, exc)
            # Record before the closing bytes (an error event is one), so a client that has
            # seen the end of the stream can already look the generation up, and one that
            # hangs up on seeing it leaves the failure recorded as the failure it was.
            usage, cost = record()
            if failure:
                yield failure
            if close is not None:
                ending = close(usage, cost)
                if ending:
                    yield ending
        except (asyncio.CancelledError, GeneratorExit):
            cancelled = True
            # The client hung up.  If the upstream had already finished (finish reason and
            # usage received) the generation itself succeeded and is billed in full; only a
            # generation cut short counts as cancelled.
            if not (state.usage is not None and not state.usage_partial and state.finish_reason
                    and status == "success"):
                status = "cancelled"
            raise
        finally:
            await _aclose(iterator)
            if not recorded:
                record()

    def _stream_usage(self, run: _Run, state: StreamState) -> Usage:
        return stream_usage(state, run.prompt_estimate)


    # -- bookkeeping ----------------------------------------------------------------------

    def _note_attempt(self, run: _Run, target: Target, exc: UpstreamError | None, started: float) -> None:
        run.attempts.append({
            "provider": target.provider.name, "model": target.model.id,
            "upstream_model": target.endpoint.model,
            "status": 200 if exc is None else (exc.upstream_status or exc.status),
            "latency_ms": int((time.monotonic() - started) * 1000),
            **({"message": exc.message} if exc is not None else {}),
        })
        # Endpoint health: the caller's own 4xx and our own deadline say nothing about the provider.
        key = (target.model.id, target.provider.name)
        if exc is None:
            self.health.record(key, True, latency_s=time.monotonic() - started)
        elif exc.upstream_status == 429:
            self.health.record(key, False, rate_limited=True)
        elif exc.retryable:
            self.health.record(key, False)

    def _all_failed(self, run: _Run, targets: list[Target], last: UpstreamError | None) -> TollwayError:
        assert last is not None
        if len(run.attempts) == 1:
            error: TollwayError = last
        elif not last.retryable and last.status < 500:
            # The caller's own 4xx is relayed as such, with the earlier failures listed.
            error = last
            error.metadata = {**(last.metadata or {}), "attempts": run.attempts}
        else:
            summary = "; ".join(f"{a['provider']}: {a['status']} {a.get('message', '')}".strip()
                                for a in run.attempts)
            error = AllAttemptsFailed(f"all {len(run.attempts)} attempts failed: {summary}",
                                      attempts=run.attempts, last=last)
        tried = run.attempts[-1]
        target = next((t for t in targets if t.provider.name == tried["provider"]
                       and t.model.id == tried["model"]), targets[-1])
        self._record_failure(run, error, model=target.model.id, target=target)  # the last tried
        return error

    def _record_failure(self, run: _Run, exc: TollwayError, *, model: str, target: Target | None = None) -> None:
        # Only catalog ids become label values: a client's made-up model name must not
        # grow the metrics without bound.
        self.metrics.error(exc.status, model=model if model in self.catalog.models else "(unknown)",
                           provider=target.provider.name if target else "")
        self.writer.submit(bounded_record(GenerationRecord(
            id=run.generation_id, key_id=run.principal.key_id, created_at=run.created_at,
            model=model or "(none)", provider=target.provider.name if target else None,
            upstream_model=target.endpoint.model if target else None, app=run.meta.app,
            app_title=run.meta.app_title, session_id=run.meta.session_id, status="error",
            http_status=exc.status, streamed=run.body.get("stream") is True, api=run.meta.api,
            latency_ms=int((time.monotonic() - run.started) * 1000), error=exc.message[:2000],
            attempts=run.attempts or None, extra=_analytics_extra(run),
        )))
        if run.hold is not None:
            self.limits.release(run.hold)
            run.hold = None

    def _submit(self, run: _Run, target: Target, usage: Usage, cost: int, *, status: str,
                http_status: int, finish_reason: str | None, native_finish_reason: str | None,
                upstream_id: str | None, latency_s: float, ttft_s: float | None, streamed: bool,
                cancelled: bool = False, error: str | None = None) -> None:
        hold = run.hold
        if usage.estimated and hold is not None and hold.reserved_nano is not None:
            # The reservation is priced from hard bounds (the prompt's byte bound, the output
            # cap sent upstream, the dearest endpoint), so no real generation costs more; a
            # local estimate that does (bytes/4 over a cut stream) is the estimate's error,
            # and billing it would push a key past its limit.
            cost = min(cost, hold.reserved_nano)
        self.writer.submit(bounded_record(GenerationRecord(
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
            # One attempt is the row itself (provider, upstream model, status, latency), so
            # only fallbacks keep the list: it was a third of a typical row's bytes.
            attempts=run.attempts if len(run.attempts) > 1 else None, extra=_analytics_extra(run),
        )))
        if run.hold is not None:
            self.limits.settle(run.hold, cost, usage.total_tokens)
            run.hold = None
        self.metrics.record(model=target.model.id, provider=target.provider.name, status=status,
                            latency_s=latency_s, ttft_s=ttft_s, prompt_tokens=usage.prompt_tokens,
                            completion_tokens=usage.completion_tokens, cost_nano=cost)


def journal_dir(settings: Settings) -> Path:
    """``ledger.journal_dir``, or the default for the configured database."""
    configured = settings.ledger.journal_dir
    return Path(configured).expanduser() if configured else default_journal_dir(settings.database)


async def _aclose(iterator: AsyncIterator[bytes]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def _completion_tokens_estimate(payload: dict[str, Any]) -> int:
    from tollway.metering import estimate_tokens_from_bytes

    total = 0
    for choice in payload.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            total += estimate_tokens_from_bytes(len(message["content"].encode("utf-8", "replace")))
    return total


def validate_chat_body(body: dict[str, Any], *, built_messages: bool = False) -> None:
    """Reject what no provider would accept, naming the field and the fix (400).

    ``built_messages``: tollway built ``messages`` itself from a request it validated (the
    Responses translation: every message an object with a string role), so the walk over a
    long conversation is skipped; the other fields came from the client and are checked."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list of {role, content} objects", code=400)
    for i, message in enumerate(() if built_messages else messages):
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


def _analytics_extra(run: _Run) -> dict[str, Any] | None:
    """What analytics reads from ``extra``: the app's declared categories, the caller's ``user``."""
    user = run.body.get("user")
    extra: dict[str, Any] = dict(run.meta.extra or {})  # notes such as dropped tools
    if run.meta.categories:
        extra["categories"] = list(run.meta.categories)
    if isinstance(user, str) and user:
        extra["user"] = user[:200]
    return extra or None
