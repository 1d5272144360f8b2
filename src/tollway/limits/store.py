"""The spend-store contract shared by the Redis and the database implementations.

A store answers one question atomically: may this request start, given the key's
requests and tokens in the last 60 seconds and its settled-plus-reserved spend in the
current period?  If yes it records the request (a *hold*); :meth:`LimitStore.settle`
later turns the hold into the real cost and token count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from tollway.limits.periods import Period

WINDOW_MS = 60_000  # RPM and TPM are counted over a sliding minute
GONE_TTL_MS = 86_400_000  # expired reservations remembered this long: a late settlement counts


@dataclass(frozen=True, slots=True)
class AdmitRequest:
    """What one request asks of its key's limits (money in nano-dollars)."""

    key_id: str
    hold_id: str
    limit_nano: int | None  # None: no credit limit
    period: Period
    reserve_nano: int
    rpm: int | None
    tpm: int | None
    tokens: int  # worst-case tokens counted against the TPM window
    reservation_ttl_ms: int
    counter_ttl_s: int


@dataclass(frozen=True, slots=True)
class AdmitResult:
    """``ok``, ``rpm``, ``tpm``, ``credits`` (refused) or ``seed`` (counter missing)."""

    outcome: str
    retry_after_ms: int = 0
    remaining_nano: int = 0


@dataclass(frozen=True, slots=True)
class Hold:
    """An admitted request's claim on its key's limits, settled when it ends."""

    key_id: str
    hold_id: str
    period_id: str
    reserved_nano: int | None  # None: the key has no credit limit
    tokens: int | None  # None: the key has no TPM limit
    counter_ttl_s: int
    # Output tokens per choice the reservation covers, sent upstream as the request's cap
    # (None: nothing to cap, e.g. embeddings or a key with only an RPM limit).
    output_cap: int | None = None


class LimitStore(Protocol):
    async def admit(self, req: AdmitRequest) -> AdmitResult:
        """Check and record atomically; ``seed`` asks the caller to :meth:`seed` first."""
        ...

    async def seed(self, key_id: str, period: Period, spent_nano: int, ttl_s: int) -> None:
        """Start the period's spend counter from the ledger, unless it exists already."""
        ...

    async def settle(self, hold: Hold, cost_nano: int, tokens: int) -> None:
        """Replace the hold's reservation by the real cost (0 on failure); idempotent: only
        the settlement that removes the reservation (or its mark, if it expired) adds the
        cost, so a retry whose first answer was lost is not counted again."""
        ...

    async def close(self) -> None: ...
