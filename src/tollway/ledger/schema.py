"""Tables and ordered, named migrations (simonw/llm style).

Fixed columns for what every generation has; JSON text for the rest (attempts, extras).
Money is integer nano-dollars (1e-9 USD): exact, and a signed 64-bit column still holds
9.2 billion dollars.  Timestamps are naive UTC.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    select,
    text,
)

metadata = MetaData()

migrations_table = Table(
    "tollway_migrations",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("applied_at", DateTime, nullable=False),
)

keys = Table(
    "keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("label", String(200), nullable=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime, nullable=True),
    Column("expires_at", DateTime, nullable=True),
    Column("limit_nanousd", BigInteger, nullable=True),
    Column("limit_reset", String(16), nullable=True),
    Column("rpm", Integer, nullable=True),
    Column("tpm", Integer, nullable=True),
    Column("allowed_models", Text, nullable=True),  # JSON list
    Column("policy", Text, nullable=True),  # JSON object (routing policies)
    Column("country", String(2), nullable=True),  # the owner's billing country
    Column("usage_nanousd", BigInteger, nullable=False, server_default="0"),
    Column("is_admin", Boolean, nullable=False, server_default="0"),
)

generations = Table(
    "generations",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("key_id", String(40), nullable=True),
    Column("created_at", DateTime, nullable=False),
    Column("model", String(200), nullable=False),
    Column("provider", String(100), nullable=True),
    Column("upstream_model", String(200), nullable=True),
    Column("upstream_id", String(200), nullable=True),
    Column("app", String(500), nullable=True),  # HTTP-Referer
    Column("app_title", String(500), nullable=True),  # X-OpenRouter-Title / X-Title
    Column("session_id", String(200), nullable=True),
    Column("prompt_tokens", BigInteger, nullable=False, server_default="0"),
    Column("completion_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cached_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cache_write_tokens", BigInteger, nullable=False, server_default="0"),
    Column("reasoning_tokens", BigInteger, nullable=False, server_default="0"),
    Column("cost_nanousd", BigInteger, nullable=False, server_default="0"),
    Column("status", String(16), nullable=False),  # success | error | cancelled
    Column("http_status", Integer, nullable=True),
    Column("finish_reason", String(40), nullable=True),
    Column("native_finish_reason", String(80), nullable=True),
    Column("streamed", Boolean, nullable=False, server_default="0"),
    Column("cancelled", Boolean, nullable=False, server_default="0"),
    Column("estimated", Boolean, nullable=False, server_default="0"),
    Column("latency_ms", Integer, nullable=True),
    Column("ttft_ms", Integer, nullable=True),
    Column("api", String(20), nullable=True),  # chat | messages | embeddings
    Column("error", Text, nullable=True),
    Column("attempts", Text, nullable=True),  # JSON list of {provider, status, latency_ms, message}
    Column("extra", Text, nullable=True),  # JSON object
    Index("ix_generations_key_created", "key_id", "created_at"),
    Index("ix_generations_created", "created_at"),
)


def _m001_initial(conn: Connection) -> None:
    keys.create(conn, checkfirst=True)
    generations.create(conn, checkfirst=True)


Migration = tuple[str, Callable[[Connection], None]]


def _defined_in(module: str, name: str) -> Migration:
    """The migration ``name``, the function of that name in ``module``, imported only when it
    runs: those modules import this one (their tables share its metadata)."""

    def run(conn: Connection) -> None:
        getattr(importlib.import_module(module), name)(conn)

    return name, run


# Append only; never reorder or rename.  Other modules register theirs in MIGRATIONS below.
MIGRATIONS: list[Migration] = [
    ("m001_initial", _m001_initial),
    _defined_in("tollway.ledger.rollups", "m002_rollups"),
    _defined_in("tollway.limits.tables", "m003_limits"),
    _defined_in("tollway.responses.store", "m004_responses"),
    _defined_in("tollway.ledger.dead_letters", "m005_dead_letters"),
    _defined_in("tollway.ledger.detail", "m007_analytics"),
    _defined_in("tollway.ledger.apps", "m008_app_categories"),
    _defined_in("tollway.ledger.rollups", "m009_fast_cubes"),
    _defined_in("tollway.ledger.detail", "m010_cheaper_cubes"),
    _defined_in("tollway.ledger.detail", "m011_wide_histograms"),
    _defined_in("tollway.ledger.rollups", "m012_daily_rank"),
    _defined_in("tollway.ledger.detail", "m013_quarterly_hist"),
]


def apply_migrations(conn: Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations in order inside the caller's transaction; returns their names."""
    pending_list = MIGRATIONS if migrations is None else migrations
    if conn.dialect.name == "postgresql":
        # Two replicas starting together must not both migrate.
        conn.execute(text("SELECT pg_advisory_xact_lock(7023151)"))
    migrations_table.create(conn, checkfirst=True)
    done = set(conn.execute(select(migrations_table.c.name)).scalars())
    applied = []
    for name, fn in pending_list:
        if name in done:
            continue
        fn(conn)
        conn.execute(migrations_table.insert().values(name=name, applied_at=utcnow()))
        applied.append(name)
    return applied


def utcnow() -> datetime:
    """Naive UTC, the ledger's convention."""
    return datetime.now(UTC).replace(tzinfo=None)
