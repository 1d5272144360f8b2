"""Tables of the limits (migration ``m003_limits``): counters and holds for deployments
without Redis, and the audit trail of credit top-ups."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Connection, DateTime, Index, Integer, String, Table, Text

from tollway.ledger.schema import metadata

# Settled spend per key and period, written when a generation settles (before the
# batched ledger write), so the limit check sees it at once.
limit_counters = Table(
    "limit_counters",
    metadata,
    Column("key_id", String(40), primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("settled_nanousd", BigInteger, nullable=False, server_default="0"),
)

# In-flight reservations (kind 'spend'), the last minute's requests and tokens
# ('rpm', 'tpm'), and reservations that expired unsettled in the last day ('gone'), so a
# late settlement still counts.  Times are unix milliseconds.
limit_holds = Table(
    "limit_holds",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("kind", String(8), primary_key=True),
    Column("key_id", String(40), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Index("ix_limit_holds_key_kind", "key_id", "kind"),
)

key_credits = Table(
    "key_credits",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", String(40), nullable=False, index=True),
    Column("amount_nanousd", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("note", Text, nullable=True),
)


def m003_limits(conn: Connection) -> None:
    for table in (limit_counters, limit_holds, key_credits):
        table.create(conn, checkfirst=True)
