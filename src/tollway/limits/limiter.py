"""Admission (rate limits + credit reservation) and settlement; the design is described
in the package docstring (``tollway.limits``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from tollway.adapters.base import Target
from tollway.catalog import Catalog
from tollway.config import Settings
from tollway.errors import InsufficientCredits, RateLimited, ServiceUnavailable
from tollway.ledger.keys import KeyInfo
from tollway.ledger.schema import utcnow
from tollway.limits.capping import CHAT_OUTPUT_FIELDS, choices, input_bound, prompt_bound, requested_output
from tollway.limits.db_store import DbLimitStore
from tollway.limits.journal import Settlement, SettlementJournal
from tollway.limits.periods import Period, period_of
from tollway.limits.store import AdmitRequest, AdmitResult, Hold, LimitStore
from tollway.limits.usage import ledger_spend
from tollway.metering import NANO_PER_USD

log = logging.getLogger("tollway.limits")

_FEMTO_PER_NANO = 1_000_000
_T = TypeVar("_T")
_Errors = tuple[type[BaseException], ...]


def _driver_errors() -> tuple[_Errors, _Errors]:
    """(every error the spend store's drivers raise, those that mean it is unreachable).

    Redis's are among them once redis is loaded: only a Redis store raises them, and a
    gateway without one never imports redis (6-7 MB of memory and ~130 ms of start-up)."""
    errors: _Errors = (OSError, SQLAlchemyError)
    outages: _Errors = (OSError, OperationalError)
    if "redis" in sys.modules:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        errors += (RedisError,)
        outages += (RedisConnectionError, RedisTimeoutError)
    return errors, outages


def has_limits(key: KeyInfo | None) -> bool:
    """Whether admission must consult the spend store (unlimited keys skip it entirely)."""
    return key is not None and (key.limit_nanousd is not None or bool(key.rpm) or bool(key.tpm))


def worst_case(catalog: Catalog, targets: Sequence[Target], prompt_tokens: int, output_cap: int,
               n: int = 1) -> tuple[int, int]:
    """The most a request can cost (nano-USD, rounded up) and use (tokens) on any target.

    Every prompt token is priced at the dearest of the prompt, cache-read and cache-write
    prices, every output token at the dearer of the completion and reasoning prices; the
    prompt is at most the endpoint's context length, the output ``n`` times the cap (at
    most the endpoint's own maximum).
    """
    cost, tokens = 0, 0
    for target in targets:
        prompt = min(prompt_tokens, _context_length(target) or prompt_tokens)
        cap = target.endpoint.max_output_tokens
        out = n * (min(output_cap, cap) if cap else output_cap)
        prices = catalog.price_table(target.model.id, target.endpoint)
        femto = (prompt * max(prices.prompt, prices.cache_read, prices.cache_write)
                 + out * max(prices.completion, prices.reasoning))
        cost = max(cost, -(-femto // _FEMTO_PER_NANO) + prices.request_nano)
        tokens = max(tokens, prompt + out)
    return cost, tokens


def affordable_output(catalog: Catalog, targets: Sequence[Target], prompt_tokens: int, n: int,
                      remaining_nano: int) -> int:
    """The largest output cap whose worst case fits in ``remaining_nano`` (0: none fits)."""
    best: int | None = None
    for target in targets:
        prompt = min(prompt_tokens, _context_length(target) or prompt_tokens)
        prices = catalog.price_table(target.model.id, target.endpoint)
        spare = (remaining_nano - prices.request_nano) * _FEMTO_PER_NANO \
            - prompt * max(prices.prompt, prices.cache_read, prices.cache_write)
        per_token = n * max(prices.completion, prices.reasoning)
        if spare < 0:
            return 0
        if per_token:
            best = min(best, spare // per_token) if best is not None else spare // per_token
    return best if best is not None else 2**31


def _context_length(target: Target) -> int | None:
    return target.endpoint.context_length or target.model.context_length


def _usd(nano: int) -> str:
    return f"{max(nano, 0) / NANO_PER_USD:.6f}".rstrip("0").rstrip(".") or "0"


def _seconds(ms: int) -> int:
    return max(1, -(-ms // 1000))


class Limiter:
    """Admits requests of limited keys and settles them; one per gateway process."""

    def __init__(self, settings: Settings, engine: Engine, *, store: LimitStore | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        limits = settings.limits
        self._engine = engine
        self._clock = clock
        self._margin = limits.prompt_estimate_margin_pct
        self._default_out = limits.default_max_output_tokens
        ttl = limits.reservation_ttl_s or settings.timeouts.total + 60
        self._reservation_ttl_ms = int(ttl * 1000)
        self._counter_ttl_s = limits.counter_ttl_s
        self.shared = settings.redis is not None
        if store is not None:
            self.store: LimitStore = store
        elif settings.redis is not None:
            from tollway.limits.redis_store import RedisLimitStore

            self.store = RedisLimitStore(settings.redis, timeout_s=limits.redis_timeout_s,
                                         max_connections=limits.redis_max_connections)
        else:
            self.store = DbLimitStore(engine)
        self._store_errors, self._outage_errors = _driver_errors()  # after the store imported its driver
        self.journal = SettlementJournal(Path(limits.settlement_journal_dir))
        self._tasks: set[asyncio.Task[None]] = set()
        self._drainer: asyncio.Task[None] | None = None
        self._owed = asyncio.Event()
        self._down = False

    async def start(self) -> None:
        """Open the settlement journal; apply what earlier processes left owing."""
        owed = await asyncio.to_thread(self.journal.open)
        if owed:
            self._wake_drainer()

    async def close(self) -> None:
        """Finish pending settlements (a journaled one gets a few seconds), then close the store."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._drainer is not None:
            if self.journal.pending:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(5):
                        while self.journal.pending:
                            await asyncio.sleep(0.05)
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
        await asyncio.to_thread(self.journal.close)
        await self.store.close()

    async def admit(self, key: KeyInfo, body: dict[str, Any], targets: Sequence[Target],
                    catalog: Catalog, now: datetime | None = None, *,
                    output_fields: tuple[str, ...] = CHAT_OUTPUT_FIELDS) -> Hold:
        """Check the key's RPM, TPM and credit atomically and reserve the worst case.

        The worst case is a bound (:mod:`tollway.limits.capping`): the prompt's, plus ``n``
        times the output cap, which the caller must send upstream
        (:func:`tollway.limits.capping.cap_output` with ``Hold.output_cap``).  A request
        that names no output cap gets the most the remaining credit covers.  ``output_fields``
        names the body's output fields (chat, Messages, Responses; ``NO_OUTPUT`` for embeddings).

        Raises 429 (:class:`RateLimited`), 402 (:class:`InsufficientCredits`) or 503
        (:class:`ServiceUnavailable`, the spend store is unreachable: fail closed).
        """
        embedding = not output_fields  # NO_OUTPUT: embeddings
        prompt = input_bound(body) if embedding else prompt_bound(body)
        prompt += prompt * self._margin // 100
        n = 1 if embedding else choices(body)
        asked = None if embedding else requested_output(body, output_fields)
        if embedding:
            out = 0
        elif asked is not None:
            out = asked
        else:
            caps = [t.endpoint.max_output_tokens for t in targets if t.endpoint.max_output_tokens]
            out = min([self._default_out, *caps])
        period = period_of(key.limit_reset, now or self._clock())
        req, result = await self._reserve(key, period, catalog, targets, prompt, out, n)
        if result.outcome == "credits" and asked is None and not embedding:
            # No cap asked: cap the output at what the remaining credit covers.
            fits = affordable_output(catalog, targets, prompt, n, result.remaining_nano)
            if 1 <= fits < out:
                out = fits
                req, result = await self._reserve(key, period, catalog, targets, prompt, out, n)
        if result.outcome == "ok":
            limited_output = not embedding and (key.limit_nanousd is not None or bool(key.tpm))
            return Hold(key_id=key.id, hold_id=req.hold_id, period_id=period.id,
                        reserved_nano=req.reserve_nano if key.limit_nanousd is not None else None,
                        tokens=req.tokens if key.tpm else None, counter_ttl_s=self._counter_ttl_s,
                        output_cap=out if limited_output else None)
        fits = affordable_output(catalog, targets, prompt, n, result.remaining_nano) \
            if result.outcome == "credits" and not embedding else 0
        raise self._refusal(key, req, result, prompt, fits)

    async def _reserve(self, key: KeyInfo, period: Period, catalog: Catalog, targets: Sequence[Target],
                       prompt: int, out: int, n: int) -> tuple[AdmitRequest, AdmitResult]:
        cost, tokens = worst_case(catalog, targets, prompt, out, n)
        if key.tpm:
            tokens = min(tokens, key.tpm)  # larger requests run only when the window is empty
        req = AdmitRequest(key_id=key.id, hold_id="h" + secrets.token_hex(8), limit_nano=key.limit_nanousd,
                           period=period, reserve_nano=cost, rpm=key.rpm, tpm=key.tpm, tokens=tokens,
                           reservation_ttl_ms=self._reservation_ttl_ms, counter_ttl_s=self._counter_ttl_s)
        result = await self._call_admit(req)
        if result.outcome == "seed":
            spent = await asyncio.to_thread(self._ledger_spend, req)
            await self._guard(self.store.seed(key.id, period, spent, self._counter_ttl_s))
            result = await self._call_admit(req)
        return req, result

    def _ledger_spend(self, req: AdmitRequest) -> int:
        with self._engine.connect() as conn:
            return ledger_spend(conn, req.key_id, req.period)

    async def _call_admit(self, req: AdmitRequest) -> AdmitResult:
        return await self._guard(self.store.admit(req))

    async def _guard(self, call: Awaitable[_T]) -> _T:
        try:
            result = await call
        except self._store_errors as exc:
            if not self._down:
                self._down = True
                # Say what is down, never the URL (it may carry a password).
                log.error("spend store unreachable (%s: %s); refusing requests of keys with limits "
                          "until it is back", type(exc).__name__, str(exc).split(" to ")[0][:200])
            raise ServiceUnavailable(
                "the spend store (" + ("Redis" if self.shared else "ledger database") + ") is "
                "unreachable, so requests on keys with credit or rate limits are refused; retry shortly",
                code=503) from exc
        if self._down:
            self._down = False
            log.warning("spend store reachable again")
        return result

    def _refusal(self, key: KeyInfo, req: AdmitRequest, result: AdmitResult,
                 prompt: int, affordable: int) -> InsufficientCredits | RateLimited:
        if result.outcome == "rpm":
            return RateLimited(f"rate limit: this key may make {key.rpm} requests per minute; "
                               f"retry in {_seconds(result.retry_after_ms)} s",
                               retry_after_s=_seconds(result.retry_after_ms), code=429)
        if result.outcome == "tpm":
            return RateLimited(f"rate limit: this key may use {key.tpm} tokens per minute and this request "
                               f"may use up to {req.tokens}; retry in {_seconds(result.retry_after_ms)} s "
                               "or lower max_tokens", retry_after_s=_seconds(result.retry_after_ms), code=429)
        period = ""
        if key.limit_reset is not None and req.period.end is not None:
            period = f" for this {key.limit_reset} period (resets {req.period.end:%Y-%m-%d %H:%M} UTC)"
        fewer = f"lower max_tokens to at most {affordable}" if affordable >= 1 else "shorten the prompt"
        return InsufficientCredits(
            f"insufficient credit: this key has {_usd(result.remaining_nano)} USD left of its "
            f"{_usd(key.limit_nanousd or 0)} USD limit{period}, and this request may cost up to "
            f"{_usd(req.reserve_nano)} USD (at most {prompt} prompt tokens plus its max output); {fewer}, "
            "or top the key up (tollway keys topup)", code=402)

    # -- settlement --------------------------------------------------------------------------

    def settle(self, hold: Hold, cost_nano: int, tokens: int) -> None:
        """Turn the reservation into the real cost, in the background (never blocks a response).

        Until it lands the reservation (>= the cost) still counts, so the key's spend is
        never under-counted in between.  If the store cannot take it, it is journaled
        durably and retried until it can (:mod:`tollway.limits.journal`).
        """
        task = asyncio.get_running_loop().create_task(self._settle(Settlement(hold, cost_nano, tokens)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def release(self, hold: Hold) -> None:
        """Give the reservation back (the request failed and costs nothing)."""
        self.settle(hold, 0, 0)

    async def _settle(self, settlement: Settlement) -> None:
        for delay in (0.1, 0.3, None):
            try:
                await self.store.settle(settlement.hold, settlement.cost_nano, settlement.tokens)
                return
            except self._store_errors as exc:
                if delay is None:
                    log.warning("could not settle hold %s of key %s (%s); journaled, retried until the "
                                "spend store takes it", settlement.hold.hold_id, settlement.hold.key_id,
                                type(exc).__name__)
                    break
                await asyncio.sleep(delay)
        await asyncio.to_thread(self.journal.add, settlement)
        self._wake_drainer()

    def _wake_drainer(self) -> None:
        self._owed.set()
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Apply journaled settlements, retrying without end while the store is down; one
        that keeps failing never holds back the others."""
        delay = 0.1
        while True:
            await self._owed.wait()
            self._owed.clear()
            while self.journal.pending:
                for settlement in self.journal.pending:
                    try:
                        await self.store.settle(settlement.hold, settlement.cost_nano, settlement.tokens)
                    except self._outage_errors:
                        break  # the store is unreachable: wait, then start over
                    except self._store_errors as exc:
                        log.error("journaled settlement of hold %s refused by the spend store (%s); "
                                  "retried later", settlement.hold.hold_id, type(exc).__name__)
                        continue
                    await asyncio.to_thread(self.journal.done, settlement)
                if not self.journal.pending:
                    log.warning("journaled settlements applied; the spend store is up to date")
                    delay = 0.1
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
