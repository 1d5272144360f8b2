"""The single ledger writer: batches generation records off the response path.

Request handlers call :meth:`LedgerWriter.submit` (a lock-free queue put); a thread
drains the queue in batches, and in one transaction inserts the generations, adds their
cost to each key's usage and runs the registered batch hooks (rollups), so the ledger
and the per-key spend can never disagree.  :meth:`close` drains everything still queued,
which is what SIGTERM triggers through the server's lifespan.

A batch that fails is retried (with backoff) rather than dropped; inserts are keyed by
generation id, so a retry after an ambiguous commit never counts a generation twice.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine, bindparam, select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError

from tollway.ledger import schema
from tollway.ledger.records import COLUMNS, GenerationRecord

log = logging.getLogger("tollway.ledger")

BatchHook = Callable[[Connection, Sequence[GenerationRecord]], None]


@functools.cache
def _insert_sql(paramstyle: str) -> str:
    marks = ", ".join(["?" if paramstyle == "qmark" else "%s"] * len(COLUMNS))
    return f"INSERT INTO generations ({', '.join(COLUMNS)}) VALUES ({marks})"
_STOP = object()


class LedgerWriter:
    def __init__(self, engine: Engine, *, batch_size: int = 500, flush_interval_s: float = 0.05,
                 hooks: Sequence[BatchHook] = ()) -> None:
        self._engine = engine
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._hooks = tuple(hooks)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending: dict[str, GenerationRecord] = {}
        self._thread: threading.Thread | None = None
        self.written = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tollway-ledger", daemon=True)
            self._thread.start()

    def submit(self, record: GenerationRecord) -> None:
        """Queue a record; never blocks the event loop."""
        self._pending[record.id] = record
        self._queue.put(record)

    def pending(self, generation_id: str) -> GenerationRecord | None:
        """A record accepted but not yet written (so /generation can answer at once)."""
        return self._pending.get(generation_id)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is written."""
        if self._thread is None:
            self._drain_inline()
            return True
        deadline = time.monotonic() + timeout
        while self._pending and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._pending

    def close(self, timeout: float = 60.0) -> None:
        """Write everything queued, then stop the thread."""
        if self._thread is None:
            self._drain_inline()
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("ledger writer did not drain within %.0f s; %d records unwritten",
                      timeout, len(self._pending))
        self._thread = None

    def _drain_inline(self) -> None:
        batch: list[GenerationRecord] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, GenerationRecord):
                batch.append(item)
        if batch:
            self._write(batch)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item] if isinstance(item, GenerationRecord) else []
            deadline = time.monotonic() + self._interval
            while len(batch) < self._batch_size:
                remaining = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else \
                        self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                if isinstance(nxt, GenerationRecord):
                    batch.append(nxt)
            if batch:
                self._write(batch)
        # Drain whatever arrived after the stop marker.
        self._drain_inline()

    def _write(self, batch: list[GenerationRecord]) -> None:
        """Write a batch, retrying while the database is unreachable.

        Connection trouble (OperationalError, InterfaceError) is retried with backoff for
        as long as it lasts; any other database error is a bug or a schema mismatch that
        retrying can't fix, so after a few tries the batch is logged (ids and totals, so
        an operator can reconcile) and dropped rather than hanging the writer forever.
        """
        delay, failures = 0.1, 0
        while True:
            try:
                with self._engine.begin() as conn:
                    self._insert(conn, batch)
                break
            except IntegrityError:
                # Some ids were already written (a retried batch): write the rest one by one.
                self._write_individually(batch)
                break
            except (OperationalError, InterfaceError) as exc:
                log.error("ledger database unreachable writing %d records (%s); retrying in %.1f s",
                          len(batch), type(exc).__name__, delay)
            except SQLAlchemyError as exc:
                failures += 1
                if failures >= 3:
                    log.critical("ledger write failed permanently (%s: %s); %d records NOT written: ids %s, "
                                 "cost_nanousd %d", type(exc).__name__, str(exc).splitlines()[0][:300],
                                 len(batch), ",".join(r.id for r in batch[:50]),
                                 sum(r.cost_nanousd for r in batch))
                    break
                log.error("ledger write of %d records failed (%s); retrying in %.1f s",
                          len(batch), type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        for record in batch:
            self._pending.pop(record.id, None)
        self.written += len(batch)

    def _write_individually(self, batch: list[GenerationRecord]) -> None:
        for record in batch:
            with self._engine.begin() as conn:
                exists = conn.execute(select(schema.generations.c.id).where(
                    schema.generations.c.id == record.id)).first()
                if exists is None:
                    self._insert(conn, [record])

    def _insert(self, conn: Connection, batch: Sequence[GenerationRecord]) -> None:
        # Driver-level executemany with positional tuples: compiling and binding through
        # SQLAlchemy's Core cost several times more per row on this hot thread.
        sqlite = conn.dialect.name == "sqlite"
        conn.exec_driver_sql(_insert_sql(conn.dialect.paramstyle), [r.to_values(sqlite) for r in batch])
        spend: dict[str, int] = defaultdict(int)
        for r in batch:
            if r.key_id is not None and r.cost_nanousd:
                spend[r.key_id] += r.cost_nanousd
        if spend:
            # One executemany for every key in the batch.
            conn.execute(
                schema.keys.update().where(schema.keys.c.id == bindparam("kid")).values(
                    usage_nanousd=schema.keys.c.usage_nanousd + bindparam("add")),
                [{"kid": key_id, "add": nano} for key_id, nano in spend.items()])
        for hook in self._hooks:
            hook(conn, batch)
