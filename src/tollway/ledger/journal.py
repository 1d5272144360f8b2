"""The writer's local journal: records it could not commit, on disk until it can.

When the database is unreachable the ledger writer appends each batch here instead of
holding it in memory, and replays the journal once the database answers again (and at
the next start, whatever stopped this process).  Replays are idempotent: generation ids
are the ledger's primary key and the writer skips ids already written before it adds
anything to rollups or key spend, so a record journaled after an ambiguous commit is
counted once.

Layout: a directory of append-only JSON-lines segments, ``segment-<ns>-<pid>.jsonl``, one
record per line.  A process writes one open segment at a time, holding an exclusive
``flock`` on it so that another replica sharing the directory never replays a segment
still being written; a segment is deleted only once every record in it is committed.
Each append is flushed and ``fsync``'d before :meth:`Journal.append` returns, so what the
journal took survives a SIGKILL or a power cut (a torn last line is skipped on replay).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from sqlalchemy.engine import make_url

from tollway.ledger.records import COLUMNS, GenerationRecord

log = logging.getLogger("tollway.ledger")

_PREFIX, _SUFFIX = "segment-", ".jsonl"
AHEAD_PREFIX = "ahead-"  # the write-ahead log's segments (tollway.ledger.ahead), same format


def default_journal_dir(database: str) -> Path:
    """Next to a SQLite ledger file; otherwise under ``$XDG_STATE_HOME/tollway`` (default
    ``~/.local/state``), in a directory named after the database, so that a journal is only
    ever replayed into the ledger it was written for."""
    url = make_url(database)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).expanduser().resolve().parent / (Path(url.database).name + ".tollway-journal")
    digest = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    state = Path(os.environ.get("XDG_STATE_HOME") or "~/.local/state").expanduser()
    return state / "tollway" / "journal" / digest


def encode_record(record: GenerationRecord) -> bytes:
    """One journal line."""
    return orjson.dumps({name: getattr(record, name) for name in COLUMNS}) + b"\n"


def _decode(line: bytes) -> GenerationRecord:
    doc: dict[str, Any] = orjson.loads(line)
    doc["created_at"] = datetime.fromisoformat(doc["created_at"])
    return GenerationRecord(**doc)


class Journal:
    """Append-only segments in ``directory`` (created on first use)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._counts: dict[Path, int] = {}  # records per known segment not yet replayed
        self.writable: bool = True  # False after an append failed (until one succeeds)
        self.last_error: str | None = None
        # Segments another part of this process still owns (the write-ahead log's).
        self.skip: Callable[[Path], bool] = _never

    @property
    def depth(self) -> int:
        """Records in the journal not yet replayed (this process's view)."""
        return sum(self._counts.values())

    def scan(self) -> int:
        """Count what the directory holds for this process to replay (at start: what an
        earlier run left; segments another live process holds are its own business)."""
        for path in self._segments():
            if path not in self._counts:
                count = _count_unlocked_lines(path)
                if count is not None:
                    self._counts[path] = count
        return self.depth

    def append(self, records: Sequence[GenerationRecord]) -> None:
        """Write ``records`` durably (flushed and fsync'd); raises OSError if it can't."""
        if not records:
            return
        try:
            data = b"".join(map(encode_record, records))
            if self._file is None:
                self._open_segment()
            assert self._file is not None and self._path is not None
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            self.writable = False
            self.last_error = f"{type(exc).__name__}: {exc}"
            self._close_segment()
            raise
        self.writable = True
        self._counts[self._path] = self._counts.get(self._path, 0) + len(records)

    def replay(self, write: Callable[[list[GenerationRecord]], list[GenerationRecord]],
               batch_size: int) -> bool:
        """Hand every journaled record to ``write`` (which returns the records it could not
        commit), segment by segment; a segment is deleted once all of it is committed.

        Returns True when the journal is empty (this process's segment and every segment
        no other live process holds), False at the first batch that could not be committed.
        """
        self._close_segment()  # new spills go to a new segment while this one replays
        for path in self._segments():
            try:
                handle = open(path, "rb")  # noqa: SIM115 (held open for its lock)
            except FileNotFoundError:  # another replica replayed it meanwhile
                self._counts.pop(path, None)
                continue
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # being written or replayed by another process
                    self._counts.pop(path, None)
                    continue
                if not path.exists():
                    self._counts.pop(path, None)
                    continue
                records = _read(path, handle)
                self._counts[path] = len(records)
                for start in range(0, len(records), batch_size):
                    if write(records[start:start + batch_size]):
                        return False
                path.unlink(missing_ok=True)  # (the write-ahead log may have finished it meanwhile)
                self._counts.pop(path, None)
                log.warning("ledger journal: replayed %d records from %s", len(records), path.name)
        return True

    def close(self) -> None:
        self._close_segment()

    def _segments(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir()
                          if p.name.startswith((_PREFIX, AHEAD_PREFIX)) and p.name.endswith(_SUFFIX)
                          and p != self._path and not self.skip(p))
        except FileNotFoundError:
            return []
        except OSError as exc:  # reported by /health once a spill needs the journal
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("ledger journal %s unreadable (%s)", self.directory, self.last_error)
            return []

    def _open_segment(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{_PREFIX}{time.time_ns():020d}-{os.getpid()}{_SUFFIX}"
        handle = open(path, "ab")  # noqa: SIM115 (lives as long as the segment)
        fcntl.flock(handle, fcntl.LOCK_EX)
        self._file, self._path = handle, path

    def _close_segment(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()  # releases the lock: the segment may now be replayed
        self._file, self._path = None, None


def _never(_path: Path) -> bool:
    return False


def _read(path: Path, handle: IO[bytes]) -> list[GenerationRecord]:
    records = []
    for number, line in enumerate(handle, 1):
        if not line.strip():
            continue
        try:
            records.append(_decode(line))
        except (orjson.JSONDecodeError, TypeError, ValueError, KeyError) as exc:
            # A SIGKILL or power cut can tear the last line of a segment mid-write.
            log.error("ledger journal %s line %d unreadable (%s); skipped", path.name, number,
                      type(exc).__name__)
    return records


def _count_unlocked_lines(path: Path) -> int | None:
    """Records in a segment no other process holds (None if one does)."""
    try:
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            return sum(1 for line in handle if line.strip())
    except FileNotFoundError:
        return None
