"""Stored responses (``store: true``): the response and the conversation's input items, per
key, until ``expires_at`` (config ``responses.store_ttl_s``).

Every read and delete is scoped to the calling key, so one key can never see another's
responses: a row of another key answers exactly like a row that does not exist.
Expired rows are invisible at once and purged when the next response is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    DateTime,
    Engine,
    Index,
    String,
    Table,
    Text,
    and_,
    delete,
    select,
)

from tollway.ledger.schema import metadata

stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("key_id", String(40), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("model", String(200), nullable=False),
    Column("input", Text, nullable=False),  # JSON list: the conversation's input items
    Column("response", Text, nullable=False),  # JSON object: the response as the client saw it
    Index("ix_stored_responses_expires", "expires_at"),
)


def m004_responses(conn: Connection) -> None:
    stored_responses.create(conn, checkfirst=True)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    input: list[dict[str, Any]]

    @property
    def conversation(self) -> list[dict[str, Any]]:
        """What a follow-up with ``previous_response_id`` continues: the input, then the output."""
        output = self.response.get("output")
        return [*self.input, *(output if isinstance(output, list) else ())]


def _owned(response_id: str, key_id: str | None, now: datetime) -> ColumnElement[bool]:
    table = stored_responses.c
    owner = table.key_id.is_(None) if key_id is None else table.key_id == key_id
    return and_(table.id == response_id, owner, table.expires_at > now)


def save(engine: Engine, key_id: str | None, response: dict[str, Any], items: list[dict[str, Any]],
         *, now: datetime, ttl_s: float) -> None:
    """Keep ``response`` and its input for ``ttl_s`` seconds; purge rows already expired."""
    with engine.begin() as conn:
        conn.execute(delete(stored_responses).where(stored_responses.c.expires_at <= now))
        conn.execute(stored_responses.insert().values(
            id=response["id"], key_id=key_id, created_at=now, expires_at=now + timedelta(seconds=ttl_s),
            model=str(response.get("model") or "")[:200], input=orjson.dumps(items).decode(),
            response=orjson.dumps(response).decode()))


def load(engine: Engine, key_id: str | None, response_id: str, *, now: datetime) -> StoredResponse | None:
    """The key's own unexpired response, or None (whether missing, expired or another key's)."""
    table = stored_responses.c
    with engine.connect() as conn:
        row = conn.execute(select(table.response, table.input)
                           .where(_owned(response_id, key_id, now))).first()
    if row is None:
        return None
    return StoredResponse(response=orjson.loads(row.response), input=orjson.loads(row.input))


def remove(engine: Engine, key_id: str | None, response_id: str, *, now: datetime) -> bool:
    """Delete the key's own response; False if there was none to delete."""
    with engine.begin() as conn:
        result = conn.execute(delete(stored_responses).where(_owned(response_id, key_id, now)))
    return bool(result.rowcount)
