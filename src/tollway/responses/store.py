"""Stored responses (``store: true``): the response and the conversation's input items, per
key, until ``expires_at`` (config ``responses.store_ttl_s``).

Every read and delete is scoped to the calling key, so one key can never see another's
responses: a row of another key answers exactly like a row that does not exist.
Expired rows are invisible at once and purged when the next response is saved.

A turn that continues a stored response (``previous_response_id``) keeps only its own new
input items and a link to that response (the ``input`` column holds
``{"previous": id, "items": [...]}`` instead of the whole conversation), so a long
conversation stores O(n) bytes, not O(n^2); :func:`load` rebuilds the conversation from the
chain.  Every :data:`MAX_CHAIN`-th turn stores the whole conversation again, so a load reads
at most that many rows.  Rows written before links existed (and those checkpoints) hold a
JSON list: a chain ends there.  Saving a linked turn extends its ancestors' expiry to its
own, so no ancestor is purged while a later turn needs it (a stored response stays
readable while a later response of its conversation is); deleting a response first writes
the whole conversation into the turns that link to it.
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
    func,
    select,
    update,
)

from tollway.ledger.schema import metadata

_ID_CHARS = 48

stored_responses = Table(
    "stored_responses",
    metadata,
    Column("id", String(_ID_CHARS), primary_key=True),
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


# A load reads at most this many rows; a turn that would make a longer chain stores the whole
# conversation instead.
MAX_CHAIN = 16


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    input: list[dict[str, Any]]
    # The rows the conversation was read from, this response's first (its ancestors follow).
    chain: tuple[str, ...] = ()

    @property
    def conversation(self) -> list[dict[str, Any]]:
        """What a follow-up with ``previous_response_id`` continues: the input, then the output."""
        return [*self.input, *_output(self.response)]


def _output(response: dict[str, Any]) -> list[Any]:
    output = response.get("output")
    return output if isinstance(output, list) else []


def _owner(key_id: str | None) -> ColumnElement[bool]:
    table = stored_responses.c
    return table.key_id.is_(None) if key_id is None else table.key_id == key_id


def _owned(response_id: str, key_id: str | None, now: datetime) -> ColumnElement[bool]:
    table = stored_responses.c
    return and_(table.id == response_id, _owner(key_id), table.expires_at > now)


def save(engine: Engine, key_id: str | None, response: dict[str, Any], items: list[dict[str, Any]],
         *, now: datetime, ttl_s: float, chain: tuple[str, ...] = (), own_items: int | None = None) -> None:
    """Keep ``response`` and its input for ``ttl_s`` seconds; purge rows already expired.

    ``items`` is the whole conversation's input.  When it continues the stored response
    ``chain[0]`` (``chain`` as :func:`load` read it) and its last ``own_items`` items are this
    turn's own, only those are written, linked to ``chain[0]``.
    """
    expires = now + timedelta(seconds=ttl_s)
    table = stored_responses.c
    with engine.begin() as conn:
        conn.execute(delete(stored_responses).where(table.expires_at <= now))
        stored: Any = items
        if chain and own_items is not None and len(chain) < MAX_CHAIN:
            # Link only to a chain still whole (a previous response may have expired and been
            # purged while this one was generated): else keep the whole conversation.
            present = conn.execute(select(func.count()).select_from(stored_responses)
                                   .where(table.id.in_(chain))).scalar_one()
            if present == len(chain):
                conn.execute(update(stored_responses).where(table.id.in_(chain), table.expires_at < expires)
                             .values(expires_at=expires))
                stored = {"previous": chain[0], "items": items[len(items) - own_items:]}
        conn.execute(stored_responses.insert().values(
            id=response["id"], key_id=key_id, created_at=now, expires_at=expires,
            model=str(response.get("model") or "")[:200], input=orjson.dumps(stored).decode(),
            response=orjson.dumps(response).decode()))


def _read(conn: Connection, key_id: str | None, response_id: str, now: datetime) -> StoredResponse | None:
    """A response and its whole input, following its links (ancestors are read whatever their
    own expiry: a linked turn keeps them alive, see the module docstring)."""
    table = stored_responses.c
    if "\x00" in response_id or len(response_id) > _ID_CHARS:
        return None  # names no row (and PostgreSQL refuses NUL in text)
    row = conn.execute(select(table.response, table.input).where(_owned(response_id, key_id, now))).first()
    if row is None:
        return None
    response = orjson.loads(row.response)
    stored = orjson.loads(row.input)
    chain = [response_id]
    turns: list[tuple[list[Any], list[Any]]] = []  # (previous response's output, own items), newest first
    while isinstance(stored, dict):
        previous = stored.get("previous")
        if not isinstance(previous, str) or len(chain) > MAX_CHAIN:
            return None  # not a row this module wrote
        parent = conn.execute(select(table.response, table.input)
                              .where(table.id == previous, _owner(key_id))).first()
        if parent is None:
            return None
        own = stored.get("items")
        turns.append((_output(orjson.loads(parent.response)), own if isinstance(own, list) else []))
        chain.append(previous)
        stored = orjson.loads(parent.input)
    conversation: list[Any] = stored if isinstance(stored, list) else []
    for output, own in reversed(turns):
        conversation = [*conversation, *output, *own]
    return StoredResponse(response=response, input=conversation, chain=tuple(chain))


def load(engine: Engine, key_id: str | None, response_id: str, *, now: datetime) -> StoredResponse | None:
    """The key's own unexpired response, or None (whether missing, expired or another key's)."""
    with engine.connect() as conn:
        return _read(conn, key_id, response_id, now)


def remove(engine: Engine, key_id: str | None, response_id: str, *, now: datetime) -> bool:
    """Delete the key's own response; False if there was none to delete.  Turns that link to it
    get the whole conversation written into them first, so they keep working."""
    table = stored_responses.c
    with engine.begin() as conn:
        removed = _read(conn, key_id, response_id, now)
        if removed is None:
            return False
        # A linked row's JSON starts with its link ("_" and "%" in ids only widen the match).
        children = conn.execute(select(table.id, table.input).where(
            _owner(key_id), table.input.like('{"previous":' + orjson.dumps(response_id).decode() + ",%"))).all()
        for child in children:
            stored = orjson.loads(child.input)
            if isinstance(stored, dict) and stored.get("previous") == response_id:
                own = stored.get("items")
                whole = [*removed.conversation, *(own if isinstance(own, list) else [])]
                conn.execute(update(stored_responses).where(table.id == child.id)
                             .values(input=orjson.dumps(whole).decode()))
        conn.execute(delete(stored_responses).where(table.id == response_id, _owner(key_id)))
    return True
