"""Admission (rate limits + credit reservation) and settlement; the design is described
in the package docstring (``tollway.limits``)."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tollway.adapters.base import Target
from tollway.catalog import Catalog
from tollway.config import Settings
from tollway.embeddings import estimate_input_tokens
from tollway.errors import InsufficientCredits, RateLimited, ServiceUnavailable
from tollway.ledger.keys import KeyInfo
from tollway.ledger.schema import utcnow
from tollway.limits.db_store import DbLimitStore
from tollway.limits.periods import period_of
from tollway.limits.redis_store import RedisLimitStore
from tollway.limits.store import AdmitRequest, AdmitResult, Hold, LimitStore
from tollway.limits.usage import ledger_spend
from tollway.metering import NANO_PER_USD, estimate_prompt_tokens

log = logging.getLogger("tollway.limits")

_FEMTO_PER_NANO = 1_000_000
_T = TypeVar("_T")


def has_limits(key: KeyInfo | None) -> bool:
    """Whether admission must consult the spend store (unlimited keys skip it entirely)."""
    return key is not None and (key.limit_nanousd is not None or bool(key.rpm) or bool(key.tpm))


def requested_max_output(body: dict[str, Any]) -> int | None:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def worst_case(catalog: Catalog, targets: Sequence[Target], body: dict[str, Any],
               prompt_tokens: int, default_max_output: int) -> tuple[int, int]:
    """The most a request can cost (nano-USD, rounded up) and use (tokens) on any target.

    Every prompt token is priced at the dearest of the prompt, cache-read and cache-write
    prices, every output token at the dearer of the completion and reasoning prices.
    """
    asked = requested_max_output(body)
    cost, tokens = 0, 0
    for target in targets:
        cap = target.endpoint.max_output_tokens if default_max_output else 0  # 0: no output (embeddings)
        out = min(asked, cap) if asked and cap else (asked or cap or default_max_output)
        prices = catalog.price_table(target.model.id, target.endpoint)
        femto = (prompt_tokens * max(prices.prompt, prices.cache_read, prices.cache_write)
                 + out * max(prices.completion, prices.reasoning))
        cost = max(cost, -(-femto // _FEMTO_PER_NANO) + prices.request_nano)
        tokens = max(tokens, prompt_tokens + out)
    return cost, tokens


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
            self.store = RedisLimitStore(settings.redis, timeout_s=limits.redis_timeout_s,
                                         max_connections=limits.redis_max_connections)
        else:
            self.store = DbLimitStore(engine)
        self._tasks: set[asyncio.Task[None]] = set()
        self._down = False

    async def close(self) -> None:
        """Finish pending settlements, then close the store's connections."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()

    async def admit(self, key: KeyInfo, body: dict[str, Any], targets: Sequence[Target],
                    catalog: Catalog, now: datetime | None = None) -> Hold:
        """Check the key's RPM, TPM and credit atomically and reserve the worst case.

        Raises 429 (:class:`RateLimited`), 402 (:class:`InsufficientCredits`) or 503
        (:class:`ServiceUnavailable`, the spend store is unreachable: fail closed).
        """
        embedding = "messages" not in body and "input" in body
        prompt = estimate_input_tokens(body) if embedding else estimate_prompt_tokens(body)
        prompt += prompt * self._margin // 100
        cost, tokens = worst_case(catalog, targets, body, prompt, 0 if embedding else self._default_out)
        if key.tpm:
            tokens = min(tokens, key.tpm)  # larger requests run only when the window is empty
        period = period_of(key.limit_reset, now or self._clock())
        req = AdmitRequest(key_id=key.id, hold_id="h" + secrets.token_hex(8), limit_nano=key.limit_nanousd,
                           period=period, reserve_nano=cost, rpm=key.rpm, tpm=key.tpm, tokens=tokens,
                           reservation_ttl_ms=self._reservation_ttl_ms, counter_ttl_s=self._counter_ttl_s)
        result = await self._call_admit(req)
        if result.outcome == "seed":
            spent = await asyncio.to_thread(self._ledger_spend, req)
            await self._guard(self.store.seed(key.id, period, spent, self._counter_ttl_s))
            result = await self._call_admit(req)
        if result.outcome == "ok":
            return Hold(key_id=key.id, hold_id=req.hold_id, period_id=period.id,
                        reserved_nano=cost if key.limit_nanousd is not None else None,
                        tokens=tokens if key.tpm else None, counter_ttl_s=self._counter_ttl_s)
        raise self._refusal(key, req, result, prompt)

    def _ledger_spend(self, req: AdmitRequest) -> int:
        with self._engine.connect() as conn:
            return ledger_spend(conn, req.key_id, req.period)

    async def _call_admit(self, req: AdmitRequest) -> AdmitResult:
        return await self._guard(self.store.admit(req))

    async def _guard(self, call: Awaitable[_T]) -> _T:
        try:
            result = await call
        except (RedisError, OSError, SQLAlchemyError) as exc:
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
                 prompt: int) -> InsufficientCredits | RateLimited:
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
        return InsufficientCredits(
            f"insufficient credit: this key has {_usd(result.remaining_nano)} USD left of its "
            f"{_usd(key.limit_nanousd or 0)} USD limit{period}, and this request may cost up to "
            f"{_usd(req.reserve_nano)} USD (~{prompt} prompt tokens plus max output); lower max_tokens, "
            "or top the key up (tollway keys topup)", code=402)

    def settle(self, hold: Hold, cost_nano: int, tokens: int) -> None:
        """Turn the reservation into the real cost, in the background (never blocks a response).

        Until it runs the reservation (>= the cost) still counts, so the key's spend is
        never under-counted in between.
        """
        task = asyncio.get_running_loop().create_task(self._settle(hold, cost_nano, tokens))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def release(self, hold: Hold) -> None:
        """Give the reservation back (the request failed and costs nothing)."""
        self.settle(hold, 0, 0)

    async def _settle(self, hold: Hold, cost_nano: int, tokens: int) -> None:
        for delay in (0.1, 0.5, 2.0, None):
            try:
                await self.store.settle(hold, cost_nano, tokens)
                return
            except (RedisError, OSError, SQLAlchemyError) as exc:
                if delay is None:
                    # The reservation expires by itself; the ledger still has the cost, and a
                    # counter lost with Redis is re-seeded from it.
                    log.error("could not settle hold %s of key %s (%s); its reservation expires after "
                              "the TTL", hold.hold_id, hold.key_id, type(exc).__name__)
                    return
                await asyncio.sleep(delay)  # a brief outage should not lose the settlement
