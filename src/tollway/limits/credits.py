"""Top-ups and the per-key view of credit (shared by the HTTP admin API and the CLI).

A top-up raises the key's ``limit`` by the amount (for keys that reset, every period's
allowance); a key without a limit becomes limited at its current-period spend plus the
amount, so it can spend exactly that much more.  Each top-up is recorded in
``key_credits``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from tollway.ledger import schema
from tollway.ledger.keys import KeyInfo, get_key
from tollway.limits.periods import period_of
from tollway.limits.tables import key_credits
from tollway.limits.usage import ledger_spend, usage_windows
from tollway.metering import nano_to_usd


def top_up(conn: Connection, key: KeyInfo, amount_nano: int, *, now: datetime,
           note: str | None = None) -> KeyInfo:
    """Add ``amount_nano`` of spendable credit to ``key``, atomically; returns the new key."""
    keys = schema.keys
    if key.limit_nanousd is None:
        base = ledger_spend(conn, key.id, period_of(key.limit_reset, now))
        conn.execute(update(keys).where((keys.c.id == key.id) & keys.c.limit_nanousd.is_(None))
                     .values(limit_nanousd=base))
    conn.execute(update(keys).where(keys.c.id == key.id)
                 .values(limit_nanousd=keys.c.limit_nanousd + amount_nano))
    conn.execute(insert(key_credits).values(key_id=key.id, amount_nanousd=amount_nano, created_at=now,
                                            note=note))
    updated = get_key(conn, key.id)
    assert updated is not None
    return updated


def topped_up(conn: Connection, key_id: str) -> int:
    value = conn.execute(select(func.coalesce(func.sum(key_credits.c.amount_nanousd), 0)).where(
        key_credits.c.key_id == key_id)).scalar()
    return int(value or 0)


def period_usage(key: KeyInfo, windows: dict[str, int]) -> int:
    """Spend counted against the limit: the current reset period's, or the lifetime's."""
    return windows.get(key.limit_reset or "total", windows["total"])


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def render_key(key: KeyInfo, windows: dict[str, int]) -> dict[str, Any]:
    """OpenRouter's key object (management API), with tollway's exact figures appended."""
    spent = period_usage(key, windows)
    limit = key.limit_nanousd
    return {
        "hash": key.id, "name": key.name, "label": key.label or key.key_prefix + "...",
        "disabled": key.revoked_at is not None,
        "limit": nano_to_usd(limit) if limit is not None else None,
        "limit_remaining": nano_to_usd(max(limit - spent, 0)) if limit is not None else None,
        "limit_reset": key.limit_reset, "include_byok_in_limit": False,
        "usage": nano_to_usd(windows["total"]), "usage_daily": nano_to_usd(windows["daily"]),
        "usage_weekly": nano_to_usd(windows["weekly"]), "usage_monthly": nano_to_usd(windows["monthly"]),
        "byok_usage": 0.0, "byok_usage_daily": 0.0, "byok_usage_weekly": 0.0, "byok_usage_monthly": 0.0,
        "created_at": _stamp(key.created_at), "updated_at": None, "expires_at": _stamp(key.expires_at),
        "last_used_at": None, "creator_user_id": None, "external_user": None, "workspace_id": "default",
        "tollway": {
            "id": key.id, "key_prefix": key.key_prefix, "rpm": key.rpm, "tpm": key.tpm,
            "allowed_models": list(key.allowed_models) if key.allowed_models is not None else None,
            "policy": key.policy, "country": key.country, "is_admin": key.is_admin,
            "revoked_at": _stamp(key.revoked_at), "limit_nanousd": limit,
            "usage_nanousd": windows["total"], "period_usage_nanousd": spent,
            "limit_remaining_nanousd": max(limit - spent, 0) if limit is not None else None,
        },
    }


def key_view(conn: Connection, key_id: str, now: datetime) -> tuple[KeyInfo, dict[str, int]] | None:
    """A key read fresh from the database, with its spend per window from the ledger."""
    key = get_key(conn, key_id)
    if key is None:
        return None
    return key, usage_windows(conn, key.id, now)
