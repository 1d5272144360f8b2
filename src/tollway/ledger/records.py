"""The generation record: what the gateway hands to the ledger writer."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import orjson


@dataclass(slots=True)
class GenerationRecord:
    """One generation, successful, failed or cancelled.  Field names are column names."""

    id: str
    key_id: str | None
    created_at: datetime
    model: str
    provider: str | None = None
    upstream_model: str | None = None
    upstream_id: str | None = None
    app: str | None = None
    app_title: str | None = None
    session_id: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_nanousd: int = 0
    status: str = "success"
    http_status: int | None = 200
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    streamed: bool = False
    cancelled: bool = False
    estimated: bool = False
    latency_ms: int | None = None
    ttft_ms: int | None = None
    api: str | None = "chat"
    error: str | None = None
    attempts: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = field(default=None)

    def to_values(self, sqlite: bool) -> tuple[Any, ...]:
        """Column values in ``COLUMNS`` order, for the writer's driver-level executemany.

        SQLite gets ``created_at`` as the same text SQLAlchemy's DateTime writes, so rows
        written either way sort and compare alike.
        """
        values = [getattr(self, name) for name in COLUMNS]
        if sqlite:
            values[_CREATED_AT] = self.created_at.strftime("%Y-%m-%d %H:%M:%S.%f")
        values[_ATTEMPTS] = orjson.dumps(self.attempts).decode() if self.attempts else None
        values[_EXTRA] = orjson.dumps(self.extra).decode() if self.extra else None
        return tuple(values)

    def to_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in COLUMNS}
        row["attempts"] = orjson.dumps(self.attempts).decode() if self.attempts else None
        row["extra"] = orjson.dumps(self.extra).decode() if self.extra else None
        return row


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(GenerationRecord))
_CREATED_AT, _ATTEMPTS, _EXTRA = (COLUMNS.index(n) for n in ("created_at", "attempts", "extra"))
