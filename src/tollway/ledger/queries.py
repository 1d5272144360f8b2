"""Read-side queries over the ledger: one generation, usage totals."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from tollway.ledger import schema


def get_generation(conn: Connection, generation_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(schema.generations).where(schema.generations.c.id == generation_id)).first()
    return dict(row._mapping) if row is not None else None


def usage_summary(conn: Connection, *, key_id: str | None = None) -> dict[str, int]:
    """Totals over the generations a key was charged for (integers; cost in nano-dollars):
    the successful ones, and those cut short (cancelled, mid-stream error) that cost
    something, so the total matches the keys' spend."""
    g = schema.generations
    query = select(
        func.count(),
        func.coalesce(func.sum(g.c.prompt_tokens), 0),
        func.coalesce(func.sum(g.c.completion_tokens), 0),
        func.coalesce(func.sum(g.c.cached_tokens), 0),
        func.coalesce(func.sum(g.c.reasoning_tokens), 0),
        func.coalesce(func.sum(g.c.cost_nanousd), 0),
    ).where((g.c.status == "success") | (g.c.cost_nanousd > 0))
    if key_id is not None:
        query = query.where(g.c.key_id == key_id)
    row = conn.execute(query).one()
    return {"requests": int(row[0]), "prompt_tokens": int(row[1]), "completion_tokens": int(row[2]),
            "cached_tokens": int(row[3]), "reasoning_tokens": int(row[4]), "cost_nanousd": int(row[5])}


def status_counts(conn: Connection) -> dict[str, int]:
    g = schema.generations
    rows = conn.execute(select(g.c.status, func.count()).group_by(g.c.status))
    return {str(status): int(n) for status, n in rows}
