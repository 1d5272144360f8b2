"""The dead-letter table: generation records the database refused, kept with the reason.

A record lands here only after the writer isolated it (see ``LedgerWriter``): its batch
failed for a reason that is not the database being unreachable, and the record failed
again on its own.  Its batch-mates were committed.  The row keeps the error text and the
whole record as JSON, so an operator can fix and re-import it (``generation_id`` is the
primary key of ``generations``: a re-import can never count it twice).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from sqlalchemy import Column, Connection, DateTime, Integer, Table, Text, func, select

from tollway.ledger.bounds import clean_text
from tollway.ledger.records import GenerationRecord
from tollway.ledger.schema import metadata, utcnow

dead_letters = Table(
    "ledger_dead_letters",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("generation_id", Text, nullable=False),
    Column("failed_at", DateTime, nullable=False),
    Column("error", Text, nullable=False),
    Column("record", Text, nullable=False),  # the record as JSON (ascii()-escaped if not JSON-able)
)


def m005_dead_letters(conn: Connection) -> None:
    dead_letters.create(conn, checkfirst=True)


def record_json(record: GenerationRecord) -> str:
    """The record as JSON text any database can store (non-JSON-able values escaped)."""
    try:
        return orjson.dumps(asdict(record), default=str).decode()
    except (TypeError, orjson.JSONEncodeError):  # e.g. a lone surrogate: escaped, readable
        return ascii(asdict(record))


def insert_dead_letter(conn: Connection, record: GenerationRecord, error: BaseException) -> None:
    """Keep ``record`` with ``error``'s text, inside the caller's transaction."""
    message = f"{type(error).__name__}: {error}"
    conn.execute(dead_letters.insert().values(
        generation_id=clean_text(str(record.id), 200), failed_at=utcnow(),
        error=clean_text(message, 4000), record=clean_text(record_json(record), 1_000_000)))


def dead_letter_count(conn: Connection) -> int:
    count: Any = conn.execute(select(func.count()).select_from(dead_letters)).scalar()
    return int(count or 0)
