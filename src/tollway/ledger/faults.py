"""How the ledger writer tells a database outage from a record the database refuses,
and the health it reports (``/health``, ``/metrics``).

An outage (connection refused or lost, the server shutting down, a deadlock, a lock
timeout) is worth waiting out: the same batch will commit later.  Anything else a driver
raises (PostgreSQL's ``StringDataRightTruncation`` from a binary ``COPY``, sqlite3's
``OverflowError`` for an integer past 64 bits, a ``UnicodeEncodeError``...) says
something about the records: the writer isolates them instead of retrying.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

RETRY_FIRST_DELAY_S = 0.1
RETRY_MAX_DELAY_S = 5.0


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` means the database could not be reached or was busy, not that it
    refused what it was given."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, InterfaceError):
        # sqlite3's InterfaceError is a value it cannot bind: about the record.
        return not isinstance(exc.orig, sqlite3.InterfaceError)
    if isinstance(exc, OperationalError | DisconnectionError | PoolTimeout | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover (psycopg is a dependency)
        return False
    # Raised as is by the binary COPY, which talks to psycopg directly.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def first_line(exc: BaseException) -> str:
    """The first line of an error's text, bounded (for logs and /health)."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


@dataclass(slots=True)
class WriterState:
    """Written by the writer thread, read by the event loop (single attribute reads)."""

    database_reachable: bool = True
    last_error: str | None = None
    last_error_at: float | None = None
    last_write_at: float | None = None
    dead_letters: int = 0
    lost: int = 0

    def note_error(self, exc: BaseException) -> None:
        self.last_error = f"{type(exc).__name__}: {first_line(exc)}"
        self.last_error_at = time.monotonic()


@dataclass(frozen=True, slots=True)
class WriterHealth:
    """A snapshot of the ledger writer (see :meth:`LedgerWriter.health`)."""

    alive: bool
    queue_depth: int  # records accepted, neither committed nor journaled
    journal_depth: int  # records in the journal, not yet in the database
    journal_writable: bool
    database_reachable: bool
    last_error: str | None
    last_error_age_s: float | None
    dead_letters: int  # records refused by the database since start (kept in ledger_dead_letters)
    lost: int  # records neither written, dead-lettered nor journaled since start (should stay 0)
    written: int
    last_write_age_s: float | None
    write_ahead_writable: bool | None = None  # None: no write-ahead log (ledger.write_ahead false)

    @property
    def metering_possible(self) -> bool:
        return self.alive and (self.database_reachable or self.journal_writable)

    def to_json(self) -> dict[str, object]:
        return {
            "status": "ok" if self.database_reachable and self.alive else
                      "journaling" if self.metering_possible else "failing",
            "alive": self.alive, "queue_depth": self.queue_depth, "journal_depth": self.journal_depth,
            "journal_writable": self.journal_writable, "database_reachable": self.database_reachable,
            "last_error": self.last_error,
            "last_error_age_s": None if self.last_error_age_s is None else round(self.last_error_age_s, 3),
            "dead_letters": self.dead_letters, "lost": self.lost, "written": self.written,
            "last_write_age_s": None if self.last_write_age_s is None else round(self.last_write_age_s, 3),
            "write_ahead_writable": self.write_ahead_writable,
        }
