"""The write-ahead log in front of the ledger writer: what a SIGKILL can't take.

Without it, a record lives only in memory from the moment the response is answered until
the writer commits its batch; a ``kill -9`` loses that (measured on PostgreSQL under load:
up to a second and a half of traffic, the writer's backlog).  With it, a thread of its own
appends every record to an ``fsync``'d segment as soon as it arrives (group commit: while
one ``fsync`` runs, the next records queue up and go in the next write), and only then
hands it to the writer.  The writer acknowledges what it committed (or journaled, or
dead-lettered); a segment is deleted once it is closed and every record in it is
acknowledged.  After a crash, the segments left behind are replayed like the outage
journal's (same directory, same format, same idempotent replay).

A SIGKILL then loses only records not yet through one ``fsync`` (plus, whatever happens,
the responses the upstream sent that tollway had not yet answered).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from tollway.ledger.journal import AHEAD_PREFIX, encode_record
from tollway.ledger.records import GenerationRecord

log = logging.getLogger("tollway.ledger")

# A segment is closed after this many records or seconds; closed and fully acknowledged,
# it is deleted.  Bounds what a restart replays (records mostly committed already).
_ROTATE_RECORDS = 5_000
_ROTATE_S = 30.0
_GROUP_MAX = 5_000
# After a record arrives, the thread waits this long for others before its write and
# ``fsync``: one ``fsync`` costs ~53 us of CPU here (kernel time), and without the wait
# nearly every record took its own (0.91 per request at ~1,000 requests/s, 8 connections).
# A SIGKILL can lose this much more traffic: small beside the ``fsync`` latency of a loaded
# disk (README, "ledger_sigkill").
_LINGER_S = 0.005
_STOP = object()


class AheadLog:
    """Records -> fsync'd segment -> ``forward`` (the writer's queue), on its own thread."""

    def __init__(self, directory: Path, forward: Callable[[object], None]) -> None:
        self.directory = directory
        self._forward = forward
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._where: dict[str, int] = {}  # generation id -> segment number, until acknowledged
        self._outstanding: dict[int, int] = {}
        self._paths: dict[int, Path] = {}
        self._closed: set[int] = set()
        self._number = 0
        self._file: IO[bytes] | None = None
        self._opened_at = 0.0
        self._count = 0
        self.fsyncs = 0  # writes made durable: one per group of records
        self.writable = True
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None

    # -- called from the event loop / the writer ------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="tollway-ledger-ahead", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def put(self, record: GenerationRecord) -> None:
        self._queue.put(record)

    def stop(self, timeout: float) -> None:
        """Forward everything queued, then end the thread."""
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    def is_own(self, path: Path) -> bool:
        """A segment this process still tracks (its records are on their way to the database)."""
        with self._lock:
            return path in self._paths.values()

    def ack(self, records: Sequence[GenerationRecord]) -> None:
        """These records are in the database (or the outage journal, or dead-lettered)."""
        done: list[Path] = []
        with self._lock:
            for record in records:
                number = self._where.pop(record.id, None)
                if number is None:
                    continue
                left = self._outstanding[number] - 1
                self._outstanding[number] = left
                if left == 0 and number in self._closed:
                    done.append(self._forget(number))
        for path in done:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the open segment (after the writer drained): deleted if fully acknowledged,
        else left for the next start to replay."""
        self._rotate()
        with self._lock:
            left = sum(self._outstanding.values())
        if left:
            log.warning("ledger write-ahead log keeps %d records not confirmed written in %s; "
                        "they are replayed at the next start", left, self.directory)
        with contextlib.suppress(OSError):
            self.directory.rmdir()  # only if empty

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            group: list[GenerationRecord] = []
            stop = item is _STOP
            if isinstance(item, GenerationRecord):
                group.append(item)
                time.sleep(_LINGER_S)
            while not stop and len(group) < _GROUP_MAX:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                elif isinstance(item, GenerationRecord):
                    group.append(item)
            if group:
                try:
                    self._append(group)
                except Exception as exc:  # the writer must get the records whatever happens here
                    self._failed(exc)
                self._forward(group)
            if stop:
                return

    def _append(self, group: list[GenerationRecord]) -> None:
        data = b"".join(map(encode_record, group))
        if self._file is not None and (self._count >= _ROTATE_RECORDS
                                       or time.monotonic() - self._opened_at > _ROTATE_S):
            self._rotate()
        if self._file is None:
            self._open()
        assert self._file is not None
        number = self._number
        with self._lock:  # before the write: the writer may acknowledge as soon as it is forwarded
            added = 0
            for record in group:
                # An id seen twice (a caller's bug) is tracked once, so its segment still empties.
                if record.id not in self._where:
                    self._where[record.id] = number
                    added += 1
            self._outstanding[number] = self._outstanding.get(number, 0) + added
        self._file.write(data)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.fsyncs += 1
        self._count += len(group)
        if not self.writable:
            log.warning("ledger write-ahead log %s writable again", self.directory)
        self.writable = True

    def _failed(self, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.writable:
            log.error("ledger write-ahead log %s not writable (%s); records go to the writer unjournaled",
                      self.directory, self.last_error)
        self.writable = False
        self._rotate()  # a torn segment is closed: replayed at the next start if not acknowledged

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._number += 1
        path = self.directory / f"{AHEAD_PREFIX}{time.time_ns():020d}-{os.getpid()}.jsonl"
        handle = open(path, "ab")  # noqa: SIM115 (lives as long as the segment)
        fcntl.flock(handle, fcntl.LOCK_EX)  # no other process replays it while it is written
        with self._lock:
            self._paths[self._number] = path
            self._outstanding.setdefault(self._number, 0)
        self._file, self._opened_at, self._count = handle, time.monotonic(), 0

    def _rotate(self) -> None:
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            self._file.close()
        self._file = None
        with self._lock:
            self._closed.add(self._number)
            done = self._forget(self._number) if self._outstanding.get(self._number, 0) == 0 else None
        if done is not None:
            done.unlink(missing_ok=True)

    def _forget(self, number: int) -> Path:
        """(Lock held.)  Stop tracking a finished segment; returns its path to delete."""
        self._outstanding.pop(number, None)
        self._closed.discard(number)
        return self._paths.pop(number)

