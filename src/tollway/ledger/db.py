"""Engines for the two supported databases: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from tollway.ledger.schema import apply_migrations


def sqlalchemy_url(database: str) -> str:
    """``postgresql://`` means psycopg 3 here; SQLite paths are kept as given."""
    url = make_url(database)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url.render_as_string(hide_password=False)


def create_db_engine(database: str) -> Engine:
    """An engine with the pragmas the ledger relies on (WAL and a busy timeout for SQLite)."""
    url = make_url(sqlalchemy_url(database))
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
        # A database that stops answering is an outage to report (503), not a request to hang on.
        # JIT compilation costs 100-200 ms per analytics query over a large cube and never pays
        # back on statements this short (measured at 10M generations): off for the ledger.
        kwargs["connect_args"] = {"connect_timeout": 5, "options": "-c jit=off"}
        kwargs["pool_size"] = 5
    engine = create_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def migrate(engine: Engine) -> list[str]:
    """Bring the schema up to date; safe to call from several processes at once.

    PostgreSQL serialises migrators with an advisory lock; on SQLite two processes may
    race on the same DDL, and the loser simply retries against the now-current schema.
    """
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                return apply_migrations(conn)
        except DBAPIError:
            if attempt == 4 or engine.dialect.name != "sqlite":
                raise
            time.sleep(0.2 * (attempt + 1))
    return []
