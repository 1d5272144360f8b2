"""Limits in the ledger database, for deployments without Redis.

Every admission and settlement of a key runs in one transaction that first takes that
key's row lock with a no-op ``UPDATE keys`` (a row lock on PostgreSQL, the write lock on
SQLite), so the check-then-record is atomic across every worker and process sharing the
database.  Only keys with limits pay for this; it is a few statements per request, run
in a worker thread.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update

from tollway.ledger import schema
from tollway.limits.periods import Period
from tollway.limits.store import GONE_TTL_MS, WINDOW_MS, AdmitRequest, AdmitResult, Hold
from tollway.limits.tables import limit_counters, limit_holds
from tollway.limits.usage import ledger_spend


def _lock_key(conn: Connection, key_id: str) -> None:
    keys = schema.keys
    conn.execute(update(keys).where(keys.c.id == key_id).values(usage_nanousd=keys.c.usage_nanousd))


class DbLimitStore:
    """Limits shared by every process that writes the same ledger database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # One thread per process: this process's transactions queue here instead of
        # contending for the database lock (SQLite's busy handler sleeps when they do).
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-limits")

    async def admit(self, req: AdmitRequest) -> AdmitResult:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._admit, req)

    async def seed(self, key_id: str, period: Period, spent_nano: int, ttl_s: int) -> None:
        """Not needed: :meth:`admit` seeds inside its own transaction."""

    async def settle(self, hold: Hold, cost_nano: int, tokens: int) -> None:
        await asyncio.get_running_loop().run_in_executor(self._thread, self._settle, hold, cost_nano, tokens)

    async def close(self) -> None:
        self._thread.shutdown(wait=True)

    def _admit(self, req: AdmitRequest) -> AdmitResult:
        h = limit_holds
        now = int(time.time() * 1000)
        with self._engine.begin() as conn:
            _lock_key(conn, req.key_id)
            conn.execute(delete(h).where((h.c.key_id == req.key_id) & or_(
                and_(h.c.kind.in_(("rpm", "tpm")), h.c.at_ms <= now - WINDOW_MS),
                and_(h.c.kind == "gone", h.c.expires_ms <= now))))
            # An expired reservation stops counting but is remembered for a day, so a
            # settlement that lands late still adds its cost, once.
            conn.execute(update(h).where((h.c.key_id == req.key_id) & (h.c.kind == "spend")
                                         & (h.c.expires_ms <= now))
                         .values(kind="gone", expires_ms=now + GONE_TTL_MS))

            def window(kind: str) -> tuple[int, int, int | None]:
                row = conn.execute(select(func.count(), func.coalesce(func.sum(h.c.amount), 0),
                                          func.min(h.c.at_ms)).where(
                    (h.c.key_id == req.key_id) & (h.c.kind == kind))).one()
                return int(row[0]), int(row[1]), row[2]

            if req.rpm:
                count, _, oldest = window("rpm")
                if count >= req.rpm:
                    return AdmitResult("rpm", int(oldest or now) + WINDOW_MS - now)
            if req.tpm:
                _, used, oldest = window("tpm")
                if used + req.tokens > req.tpm:
                    return AdmitResult("tpm", int(oldest or now) + WINDOW_MS - now)
            remaining = -1
            rows: list[dict[str, object]] = []
            if req.limit_nano is not None:
                remaining = req.limit_nano - self._settled(conn, req) - window("spend")[1]
                if req.reserve_nano > remaining:
                    return AdmitResult("credits", 0, remaining)
                rows.append({"kind": "spend", "amount": req.reserve_nano,
                             "expires_ms": now + req.reservation_ttl_ms})
            if req.rpm:
                rows.append({"kind": "rpm", "amount": 1, "expires_ms": now + WINDOW_MS})
            if req.tpm:
                rows.append({"kind": "tpm", "amount": req.tokens, "expires_ms": now + WINDOW_MS})
            if rows:
                conn.execute(insert(h), [{"id": req.hold_id, "key_id": req.key_id, "at_ms": now, **r}
                                         for r in rows])
            return AdmitResult("ok", 0, remaining)

    def _settled(self, conn: Connection, req: AdmitRequest) -> int:
        c = limit_counters
        value = conn.execute(select(c.c.settled_nanousd).where(
            (c.c.key_id == req.key_id) & (c.c.period == req.period.id))).scalar()
        if value is not None:
            return int(value)
        # First request of the period: start from what the ledger holds.
        spent = ledger_spend(conn, req.key_id, req.period)
        conn.execute(insert(c).values(key_id=req.key_id, period=req.period.id, settled_nanousd=spent))
        return spent

    def _settle(self, hold: Hold, cost_nano: int, tokens: int) -> None:
        h, c = limit_holds, limit_counters
        with self._engine.begin() as conn:
            _lock_key(conn, hold.key_id)
            if hold.reserved_nano is not None:
                # Only the settlement that removes the reservation (or its mark, if it
                # expired) adds the cost: a retried or replayed settlement counts once.
                removed = conn.execute(delete(h).where((h.c.id == hold.hold_id)
                                                       & h.c.kind.in_(("spend", "gone")))).rowcount
                if cost_nano and removed:
                    conn.execute(update(c).where((c.c.key_id == hold.key_id) & (c.c.period == hold.period_id))
                                 .values(settled_nanousd=c.c.settled_nanousd + cost_nano))
            if hold.tokens is not None:
                conn.execute(update(h).where((h.c.id == hold.hold_id) & (h.c.kind == "tpm"))
                             .values(amount=tokens))
