"""The single ledger writer: batches generation records off the response path.

Request handlers call :meth:`LedgerWriter.submit` (a lock-free queue put); a thread
drains the queue in batches, and in one transaction inserts the generations, adds their
cost to each key's usage and runs the registered batch hooks (rollups), so the ledger
and the per-key spend can never disagree.  :meth:`close` drains everything still queued,
which is what SIGTERM triggers through the server's lifespan.

No error stops the writer.  While the database is unreachable, batches go to a local
:class:`~tollway.ledger.journal.Journal` (or, without one, are retried in memory with
backoff) and the journal is replayed once it answers and at the next start; any other
error is about the records, so the batch is bisected down to the ones the database
refuses, which go to the dead-letter table while the rest commits.  Inserts are keyed by
generation id, so a retry or replay after an ambiguous commit never counts a generation
twice.  A SIGKILL loses only what was neither committed nor journaled: with the
write-ahead log (:mod:`tollway.ledger.ahead`) records not yet through one ``fsync``,
without it the queue and the batch in flight (``benchmarks/ledger_sigkill.py``).

Two ways to write a batch, leaving identical tables: row by row (an ``executemany`` of the
generations, the hooks, ``apply_rollups`` aggregating in Python) and set-based
(:mod:`tollway.ledger.bulk`: stage the rows, let SQL insert and roll them up).  Set-based
costs this process several times less CPU per record on PostgreSQL at any batch size, and
on SQLite from a few dozen records up, so the writer picks it then; :meth:`write_bulk`
always uses it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import queue
import sqlite3
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, bindparam
from sqlalchemy.exc import IntegrityError

from tollway.ledger import bulk, schema
from tollway.ledger.ahead import AheadLog
from tollway.ledger.dead_letters import insert_dead_letter, record_json
from tollway.ledger.faults import RETRY_FIRST_DELAY_S, RETRY_MAX_DELAY_S, WriterHealth, WriterState, is_transient
from tollway.ledger.faults import first_line as _first_line
from tollway.ledger.journal import Journal
from tollway.ledger.records import COLUMNS, GenerationRecord
from tollway.ledger.rollups import apply_rollups

log = logging.getLogger("tollway.ledger")

BatchHook = Callable[[Connection, Sequence[GenerationRecord]], None]
# Below this many records a SQLite batch is cheaper row by row (measured: ~7% at 10, even
# at 40, set-based ~20% cheaper at 500); PostgreSQL is set-based at every size.
SET_BASED_MIN_SQLITE = 50
# Batches write_bulk writes at once on PostgreSQL.  Each is one server backend; two keep
# both cores of a small machine busy (measured on 2 cores, 1M records: 111k records/s against
# 74k with one); more only queue behind them there.
BULK_WORKERS_PG = 2


@functools.cache
def _insert_sql(paramstyle: str) -> str:
    marks = ", ".join(["?" if paramstyle == "qmark" else "%s"] * len(COLUMNS))
    return f"INSERT INTO generations ({', '.join(COLUMNS)}) VALUES ({marks})"
_STOP = object()


def _next_batch(records: Iterator[GenerationRecord], size: int,
                sqlite: bool) -> tuple[list[GenerationRecord], bulk.Prepared]:
    """The next ``size`` records, prepared for the database (run on write_bulk's helper thread)."""
    batch = list(itertools.islice(records, size))
    return batch, bulk.prepare(batch, sqlite)


def _nothing() -> None:
    pass


def _add(batch: list[GenerationRecord], item: object) -> None:
    """A queue item into a batch: one record, or a group the write-ahead log forwarded."""
    if isinstance(item, GenerationRecord):
        batch.append(item)
    elif isinstance(item, list):
        batch.extend(item)


class _Checkpointer:
    """SQLite's WAL checkpoints for a bulk load, on a connection and thread of their own.

    Left to the writer (``wal_autocheckpoint``), the commit that takes the WAL past 1,000
    pages first copies them into the database file: measured, ~1.3 us of the ~15 us a
    record costs the writer's thread.  A PASSIVE checkpoint never blocks the writer, so
    here it runs beside it, on the other core, after each commit.  Durability is
    unchanged: a checkpoint copies committed pages; it commits nothing.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tollway-checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        self._wake.set()

    def close(self) -> None:
        """Stop after one last checkpoint, so the load leaves no WAL behind to copy."""
        self._stopping.set()
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        raw = self._engine.raw_connection()
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                try:
                    raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
                except sqlite3.Error as exc:  # the writer's autocheckpoint resumes after the load
                    log.warning("ledger checkpoint failed (%s); left to SQLite", type(exc).__name__)
                if self._stopping.is_set():
                    return
        finally:
            raw.close()


class LedgerWriter:
    def __init__(self, engine: Engine, *, batch_size: int = 500, flush_interval_s: float = 0.05,
                 hooks: Sequence[BatchHook] = (), set_based: bool | None = None,
                 journal: Journal | None = None, write_ahead: bool = False) -> None:
        """``set_based`` forces one way of writing live batches (tests compare the two);
        by default the database and batch size choose.  ``journal`` is where batches go
        while the database is unreachable (without one they wait in memory); with
        ``write_ahead`` every record is also appended there (fsync'd) before the writer
        sees it (:mod:`tollway.ledger.ahead`), so a SIGKILL loses almost nothing."""
        self._engine = engine
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._hooks = tuple(hooks)
        # apply_rollups is what the set-based path does in SQL; any other hook still runs.
        self._rollups = apply_rollups in self._hooks
        self._other_hooks = tuple(h for h in self._hooks if h is not apply_rollups)
        self._min_set_based = 1 if engine.dialect.name == "postgresql" else SET_BASED_MIN_SQLITE
        if set_based is not None:
            self._min_set_based = 1 if set_based else 2**62
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._pending: dict[str, GenerationRecord] = {}
        self._thread: threading.Thread | None = None
        self._journal = journal
        self._ahead: AheadLog | None = None
        if journal is not None and write_ahead:
            self._ahead = AheadLog(journal.directory, self._queue.put)
            journal.skip = self._ahead.is_own
        self._put: Callable[[GenerationRecord], None] = self._queue.put
        self._state = WriterState()
        self._stopping = False
        self._replay_delay = RETRY_FIRST_DELAY_S
        self._next_replay: float | None = None  # monotonic time of the next journal replay
        self.written = 0
        self._written_lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            if self._journal is not None:
                self._journal.scan()  # before start() returns, so flush() waits for it
            if self._ahead is not None:
                self._ahead.start()
                self._put = self._ahead.put
            self._thread = threading.Thread(target=self._run, name="tollway-ledger", daemon=True)
            self._thread.start()

    def submit(self, record: GenerationRecord) -> None:
        """Queue a record; never blocks the event loop."""
        self._pending[record.id] = record
        self._put(record)

    def pending(self, generation_id: str) -> GenerationRecord | None:
        """A record accepted but not yet written (so /generation can answer at once)."""
        return self._pending.get(generation_id)

    def health(self) -> WriterHealth:
        """The writer's state for /health and /metrics (read from any thread)."""
        state, now = self._state, time.monotonic()
        journal = self._journal
        return WriterHealth(
            alive=self._alive(),
            queue_depth=len(self._pending),
            journal_depth=journal.depth if journal is not None else 0,
            journal_writable=journal is not None and journal.writable,
            database_reachable=state.database_reachable,
            last_error=state.last_error,
            last_error_age_s=None if state.last_error_at is None else now - state.last_error_at,
            dead_letters=state.dead_letters,
            lost=state.lost,
            written=self.written,
            last_write_age_s=None if state.last_write_at is None else now - state.last_write_at,
            write_ahead_writable=None if self._ahead is None else self._ahead.writable,
        )

    def _alive(self) -> bool:
        if self._thread is None:
            return True  # not started: records are written inline by flush() and close()
        return self._thread.is_alive() and (self._ahead is None or self._ahead.alive)

    def metering_possible(self) -> bool:
        """False when an answered generation could not be kept: the writer thread is gone,
        or the database is unreachable and the journal can't take records either."""
        if not self._alive():
            return False
        if self._state.database_reachable:
            return True
        return self._journal is not None and self._journal.writable

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is written (journaled records included)."""
        if self._thread is None:
            self._drain_inline()
            return True
        deadline = time.monotonic() + timeout
        while (self._pending or self._journal_depth()) and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._pending and not self._journal_depth()

    def close(self, timeout: float = 60.0) -> None:
        """Write everything queued (or journal it if the database is unreachable), then stop."""
        if self._thread is None:
            self._drain_inline()
            return
        if self._ahead is not None:
            self._put = self._queue.put  # (first: a record submitted now must not miss both)
            self._ahead.stop(timeout)  # forwards what it holds to the writer's queue first
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stopping = True  # an in-memory retry gives up and says what it drops
            self._thread.join(5)
            log.error("ledger writer did not drain within %.0f s; %d records unwritten",
                      timeout, len(self._pending))
        self._thread = None
        if self._journal is not None:
            self._journal.close()
        if self._ahead is not None:
            self._ahead.close()

    def _journal_depth(self) -> int:
        return self._journal.depth if self._journal is not None else 0

    def _drain_inline(self) -> None:
        batch: list[GenerationRecord] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, GenerationRecord):
                batch.append(item)
            elif isinstance(item, list):  # a group from the write-ahead log
                batch.extend(item)
        if batch:
            self._deliver(batch)

    def _run(self) -> None:
        try:
            if self._journal is not None and self._journal.depth:
                log.warning("ledger journal holds %d records from an earlier run; replaying them",
                            self._journal.depth)
                self._replay()
            stopping = False
            while not stopping:
                batch, stopping = self._collect()
                try:
                    if batch:
                        self._deliver(batch)
                    if self._next_replay is not None and time.monotonic() >= self._next_replay:
                        self._replay()
                except Exception:  # a bug here must not stop metering: keep the thread alive
                    log.exception("ledger writer: unexpected error; %d records pending", len(self._pending))
            self._drain_inline()  # (an in-memory retry here lasts until close() gives up)
            if self._journal_depth():
                self._replay()
            if self._journal is not None and self._journal.depth:
                log.warning("ledger database unreachable at shutdown: %d records kept in the journal %s; "
                            "they are written at the next start", self._journal.depth, self._journal.directory)
        except BaseException as exc:
            self._state.note_error(exc)
            log.critical("ledger writer thread died (%s); %d records pending", type(exc).__name__,
                         len(self._pending), exc_info=exc)
            raise

    def _collect(self) -> tuple[list[GenerationRecord], bool]:
        """The next batch (waiting for its first record at most until the next replay is due)."""
        wait = None if self._next_replay is None else max(self._next_replay - time.monotonic(), 0.0)
        try:
            item = self._queue.get(timeout=wait)
        except queue.Empty:
            return [], False
        if item is _STOP:
            return [], True
        batch: list[GenerationRecord] = []
        _add(batch, item)
        deadline = time.monotonic() + self._interval
        while len(batch) < self._batch_size:
            remaining = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            _add(batch, nxt)
        return batch, False

    def _deliver(self, batch: list[GenerationRecord]) -> None:
        """Commit a live batch, or journal it while the database is unreachable."""
        if self._journal is None:
            self._write(batch)
            return
        if self._next_replay is not None:
            # Already spilling: keep to the journal (and its order) until the replay catches up.
            self._spill(batch)
            return
        left = self._write(batch, retry_transient=False)
        if left:
            self._spill(left)

    def _spill(self, records: list[GenerationRecord]) -> None:
        assert self._journal is not None
        try:
            self._journal.append(records)
        except OSError as exc:
            log.critical("ledger journal %s not writable (%s) while the database is unreachable; "
                         "holding %d records in memory", self._journal.directory, exc, len(records))
            self._write(records)  # retries in place until the database answers (or we stop)
            return
        for record in records:
            self._pending.pop(record.id, None)
        if self._ahead is not None:
            self._ahead.ack(records)
        if self._next_replay is None:
            log.error("ledger database unreachable; journaling records to %s until it answers",
                      self._journal.directory)
            self._replay_delay = RETRY_FIRST_DELAY_S
            self._next_replay = time.monotonic() + self._replay_delay

    def _replay(self) -> None:
        """Write the journal to the database; on failure try again later (backing off)."""
        assert self._journal is not None
        if self._journal.replay(lambda records: self._write(records, retry_transient=False),
                                self._batch_size):
            self._next_replay = None
            self._replay_delay = RETRY_FIRST_DELAY_S
            return
        self._replay_delay = min(self._replay_delay * 2, RETRY_MAX_DELAY_S)
        self._next_replay = time.monotonic() + self._replay_delay

    def write_bulk(self, records: Iterable[GenerationRecord], *, batch_size: int = 50_000,
                   workers: int | None = None) -> int:
        """Write many records now, set-based (for imports and benchmarks); returns when done.

        Each batch of ``batch_size`` commits in one transaction with the same retry and
        idempotency rules as the live path, and leaves exactly the tables it would: the
        generations, key spend and, when :func:`apply_rollups` is one of the hooks, every
        rollup (computed in SQL by :mod:`tollway.ledger.bulk` instead of by the hook).
        Other hooks run on each batch as usual.  Returns the number of records taken.

        A helper thread takes the next batch from ``records`` and builds its staging rows
        while the database works on the current one, so the two overlap.  It starts once
        the current batch is staged: staging binds parameters under the GIL, while the
        set-based statements that follow release it (started earlier, the helper held the
        GIL against the staging and the two ran one after the other, measured).
        Durability is relaxed for the call (see :meth:`_bulk_connection`): a crash may lose
        the batches committed last, never part of one, and re-running the same import
        writes exactly what is missing.  If writing fails, the batch read ahead is dropped
        with the rest.

        On PostgreSQL ``workers`` batches (default :data:`BULK_WORKERS_PG`) are written at
        once, each in its own transaction on its own connection, so the server works on
        several cores; batches then commit in any order, each still whole and counted once.
        SQLite has one writer, so it takes one batch at a time whatever ``workers`` says.
        """
        sqlite = self._engine.dialect.name == "sqlite"
        if workers is None:
            workers = 1 if sqlite else BULK_WORKERS_PG
        if not sqlite and workers > 1:
            return self._write_bulk_parallel(iter(records), batch_size, workers)
        it = iter(records)
        written = 0
        with self._bulk_connection() as (conn, committed), \
                ThreadPoolExecutor(1, thread_name_prefix="tollway-bulk") as pool:
            batch, prepared = _next_batch(it, batch_size, sqlite)
            while batch:
                upcoming: list[Future[tuple[list[GenerationRecord], bulk.Prepared]]] = []

                def read_ahead(pending: list[Future[tuple[list[GenerationRecord], bulk.Prepared]]] = upcoming) -> None:
                    if not pending:
                        pending.append(pool.submit(_next_batch, it, batch_size, sqlite))

                self._write(batch, set_based=True, prepared=prepared, conn=conn, on_staged=read_ahead)
                committed()
                written += len(batch)
                read_ahead()  # (a batch given up before staging never called it)
                batch, prepared = upcoming[0].result()
        return written

    def _write_bulk_parallel(self, it: Iterator[GenerationRecord], batch_size: int, workers: int) -> int:
        """PostgreSQL: ``workers`` batches in flight, the next one prepared meanwhile.

        At most ``workers + 1`` batches are held in memory.  A batch's failure is handled
        by :meth:`_write` as on the serial path (retried, or logged and dropped).
        """
        written = 0
        in_flight: deque[Future[int]] = deque()
        with ThreadPoolExecutor(1, thread_name_prefix="tollway-bulk-read") as reader, \
                ThreadPoolExecutor(workers, thread_name_prefix="tollway-bulk-write") as writers:
            upcoming = reader.submit(_next_batch, it, batch_size, False)
            while True:
                batch, prepared = upcoming.result()
                if not batch:
                    break
                upcoming = reader.submit(_next_batch, it, batch_size, False)
                if len(in_flight) >= workers:
                    written += in_flight.popleft().result()
                in_flight.append(writers.submit(self._write_sized, batch, prepared))
            while in_flight:
                written += in_flight.popleft().result()
        return written

    def _write_sized(self, batch: list[GenerationRecord], prepared: bulk.Prepared) -> int:
        self._write(batch, set_based=True, prepared=prepared)
        return len(batch)

    @contextmanager
    def _bulk_connection(self) -> Iterator[tuple[Connection | None, Callable[[], None]]]:
        """SQLite: one connection for the whole bulk load (its TEMP staging table lives there),
        and a callback for after each commit.

        Durability stays as configured (WAL, ``synchronous = NORMAL``): ``OFF`` would buy
        ~7% on a bulk load but, as SQLite documents, a power cut during the load could
        damage the ledger file, and a ledger holds money.  Checkpoints move to a thread of
        their own (:class:`_Checkpointer`).  PostgreSQL needs no connection of its own
        (``synchronous_commit = off`` per bulk transaction can lose at most the last
        batches on a server crash, never corrupt what was committed before).
        """
        if self._engine.dialect.name != "sqlite":
            yield None, _nothing
            return
        with self._engine.connect() as conn:
            driver = conn.connection.dbapi_connection
            assert driver is not None
            if driver.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                yield conn, _nothing  # (an in-memory ledger: nothing to checkpoint)
                return
            previous = int(driver.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            driver.execute("PRAGMA wal_autocheckpoint = 0")
            checkpointer = _Checkpointer(self._engine)
            try:
                yield conn, checkpointer.nudge
            finally:
                checkpointer.close()
                driver.execute(f"PRAGMA wal_autocheckpoint = {previous}")

    def _write(self, batch: list[GenerationRecord], *, set_based: bool | None = None,
               prepared: bulk.Prepared | None = None, conn: Connection | None = None,
               on_staged: Callable[[], None] | None = None,
               retry_transient: bool = True) -> list[GenerationRecord]:
        """Write a batch whatever the database or its driver raises; returns the records
        left unwritten because the database is unreachable (only with ``retry_transient``
        false: otherwise those are retried here, with backoff, for as long as it lasts).

        Any other error is about the records (a value the database refuses) or a bug: the
        batch is split in halves, each written on its own, down to the single records
        that fail, which go to the dead-letter table with their error while the rest
        commits.  ``prepared`` (bulk only) is the batch's :func:`bulk.prepare`; ``conn`` a
        connection to use instead of one from the pool; ``on_staged`` is called once the
        batch is staged (set-based only).
        """
        delay, failures = RETRY_FIRST_DELAY_S, 0
        while True:
            try:
                self._commit(batch, set_based, prepared, conn, on_staged)
            except Exception as exc:
                self._state.note_error(exc)
                if is_transient(exc):
                    self._state.database_reachable = False
                    if not retry_transient:
                        log.error("ledger database unreachable writing %d records (%s: %s)", len(batch),
                                  type(exc).__name__, _first_line(exc))
                        return batch
                    if self._stopping:
                        self._give_up(batch, exc)
                        return []
                    log.error("ledger database unreachable writing %d records (%s); retrying in %.1f s",
                              len(batch), type(exc).__name__, delay)
                    time.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_DELAY_S)
                    continue
                failures += 1
                if len(batch) == 1 and failures < 2:
                    continue  # once more before calling it a poison record
                log.error("ledger write of %d records refused (%s: %s)", len(batch), type(exc).__name__,
                          _first_line(exc))
                return self._isolate(batch, set_based, conn, exc, retry_transient)
            self._done(batch)
            return []

    def _commit(self, batch: list[GenerationRecord], set_based: bool | None, prepared: bulk.Prepared | None,
                conn: Connection | None, on_staged: Callable[[], None] | None) -> None:
        """One attempt, in one transaction (two if some ids were already written)."""
        if set_based is None:
            set_based = len(batch) >= self._min_set_based
        try:
            with self._transaction(conn) as tx:
                if set_based:
                    self._insert_set_based(tx, batch, False, prepared, on_staged)
                else:
                    self._insert(tx, batch)
        except IntegrityError:
            # Some ids were already written (a retry after an ambiguous commit, a journal
            # replay): the set-based path skips those before adding anything up.  If the
            # error was another constraint, it raises again and the batch is split.
            with self._transaction(conn) as tx:
                self._insert_set_based(tx, batch, True, prepared, on_staged)

    def _isolate(self, batch: list[GenerationRecord], set_based: bool | None, conn: Connection | None,
                 exc: Exception, retry_transient: bool) -> list[GenerationRecord]:
        """Bisect a refused batch down to the records the database refuses; dead-letter those."""
        if len(batch) == 1:
            return self._dead_letter(batch[0], exc, retry_transient)
        mid = len(batch) // 2
        left = self._write(batch[:mid], set_based=set_based, conn=conn, retry_transient=retry_transient)
        return left + self._write(batch[mid:], set_based=set_based, conn=conn, retry_transient=retry_transient)

    def _dead_letter(self, record: GenerationRecord, exc: Exception,
                     retry_transient: bool) -> list[GenerationRecord]:
        delay = RETRY_FIRST_DELAY_S
        while True:
            try:
                with self._engine.begin() as conn:
                    insert_dead_letter(conn, record, exc)
            except Exception as failure:
                if is_transient(failure) and not self._stopping:
                    if not retry_transient:
                        return [record]  # journaled with the rest; tried again on replay
                    time.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_DELAY_S)
                    continue
                self._state.lost += 1
                log.critical("ledger record %s refused (%s: %s) and not dead-lettered (%s: %s); record: %s",
                             record.id, type(exc).__name__, _first_line(exc), type(failure).__name__,
                             _first_line(failure), record_json(record))
                self._done([record], written=False)
                return []
            self._state.dead_letters += 1
            log.error("ledger record %s refused by the database (%s: %s); kept in ledger_dead_letters",
                      record.id, type(exc).__name__, _first_line(exc))
            self._done([record], written=False)
            return []

    def _give_up(self, batch: list[GenerationRecord], exc: Exception) -> None:
        """Stopping, the database unreachable and the journal unwritable: say what is lost."""
        if self._ahead is not None and self._ahead.writable:
            log.error("ledger database unreachable at shutdown (%s); %d records kept in the write-ahead log %s, "
                      "written at the next start", type(exc).__name__, len(batch), self._ahead.directory)
            self._done(batch, written=False, kept=False)
            return
        self._state.lost += len(batch)
        log.critical("ledger database unreachable at shutdown (%s) and no journal; %d records NOT written: "
                     "ids %s, cost_nanousd %d", type(exc).__name__, len(batch),
                     ",".join(r.id for r in batch[:50]), sum(r.cost_nanousd for r in batch))
        self._done(batch, written=False, kept=False)

    def _done(self, batch: list[GenerationRecord], *, written: bool = True, kept: bool = True) -> None:
        """Forget records written (or dead-lettered: ``written`` false).  ``kept`` false: given
        up, so the write-ahead log keeps them for the next start."""
        for record in batch:
            self._pending.pop(record.id, None)
        if self._ahead is not None and kept:
            self._ahead.ack(batch)
        if written:
            self._state.database_reachable = True
            self._state.last_write_at = time.monotonic()
            with self._written_lock:  # write_bulk's parallel batches finish on several threads
                self.written += len(batch)

    @contextmanager
    def _transaction(self, conn: Connection | None) -> Iterator[Connection]:
        if conn is None:
            with self._engine.begin() as fresh:
                yield fresh
        else:
            with conn.begin():
                yield conn

    def _insert_set_based(self, conn: Connection, batch: Sequence[GenerationRecord], dedupe: bool,
                          prepared: bulk.Prepared | None = None,
                          on_staged: Callable[[], None] | None = None) -> None:
        written = bulk.ingest_batch(conn, batch, rollups=self._rollups, dedupe=dedupe, prepared=prepared,
                                    on_staged=on_staged)
        for hook in self._other_hooks:
            hook(conn, written)  # after a retry, only the records not written before

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
