"""A durable local journal of settlements the spend store could not take yet.

When a settlement cannot reach Redis (or the database store), the :class:`Limiter` writes
it here (one JSON line, fsynced) and keeps retrying it in the background until the store
takes it; only then is it marked done.  Each process owns one file,
``settlements-<pid>-<random>.jsonl`` in the journal directory, under an exclusive
``flock``: a process that starts finds the files no live process holds (a crash or a
shutdown before the store came back), adopts them and applies what they still owe.

Applying a settlement twice is harmless: only the settlement that removes the hold's
reservation adds its cost (a reservation that expired first is kept as a "gone" mark for a
day, in Redis and in the database), so a settlement whose answer was lost (a timeout after
Redis ran the script) or that was applied just before a crash is counted once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from tollway.limits.store import Hold

log = logging.getLogger("tollway.limits")


@dataclass(frozen=True, slots=True)
class Settlement:
    """A hold turned into its real cost (nano-USD) and token count."""

    hold: Hold
    cost_nano: int
    tokens: int

    def to_json(self) -> dict[str, Any]:
        return {"hold": asdict(self.hold), "cost_nano": self.cost_nano, "tokens": self.tokens}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Settlement:
        return cls(Hold(**doc["hold"]), int(doc["cost_nano"]), int(doc["tokens"]))


class SettlementJournal:
    """This process's journal file plus the orphaned files it adopted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: IO[bytes] | None = None
        self._pending: dict[str, Settlement] = {}  # hold id -> settlement, in journal order

    @property
    def pending(self) -> list[Settlement]:
        return list(self._pending.values())

    def open(self) -> list[Settlement]:
        """Adopt the files no live process holds; returns what they still owe.

        This process's own file is created only when it first has something to keep, so a
        gateway whose spend store never fails writes nothing.
        """
        if not self.directory.is_dir():
            return []
        for other in sorted(self.directory.glob("settlements-*.jsonl")):
            owed = self._adopt(other)
            if owed is None:
                continue
            for settlement in owed:
                self._write(settlement)
            other.unlink(missing_ok=True)  # its debts are in our own file now
        if self._pending:
            log.warning("%d settlement(s) left by an earlier process will be applied", len(self._pending))
        return self.pending

    def _adopt(self, path: Path) -> list[Settlement] | None:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return None
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # a live process owns it
            return list(_replay(handle.read()).values())

    def add(self, settlement: Settlement) -> None:
        """Record a settlement durably (it survives a crash from here on)."""
        self._write(settlement)

    def done(self, settlement: Settlement) -> None:
        """The store took it; once nothing is owed the file starts afresh."""
        if self._pending.pop(settlement.hold.hold_id, None) is None or self._file is None:
            return
        if not self._pending:
            self._file.truncate(0)
            self._file.seek(0)
            self._sync()
        else:
            self._append({"done": settlement.hold.hold_id})

    def close(self) -> None:
        """Release the file: empty, it is removed; otherwise the next process adopts it."""
        if self._file is None:
            return
        path = Path(self._file.name)
        self._file.close()
        self._file = None
        if not self._pending:
            path.unlink(missing_ok=True)
        else:
            log.error("%d settlement(s) could not reach the spend store before shutdown; they stay in "
                      "%s and are applied by the next process started with this journal directory",
                      len(self._pending), path)

    def _write(self, settlement: Settlement) -> None:
        self._pending[settlement.hold.hold_id] = settlement
        self._append(settlement.to_json())

    def _append(self, doc: dict[str, Any]) -> None:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self.directory / f"settlements-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
            self._file = path.open("ab")
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file.write(orjson.dumps(doc) + b"\n")
        self._sync()

    def _sync(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())


def _replay(data: bytes) -> dict[str, Settlement]:
    owed: dict[str, Settlement] = {}
    for line in data.splitlines():
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a line torn by a crash mid-write was never acknowledged
        if not isinstance(doc, dict):
            continue
        if "done" in doc:
            owed.pop(str(doc["done"]), None)
        elif "hold" in doc:
            try:
                settlement = Settlement.from_json(doc)
            except (KeyError, TypeError, ValueError):
                log.error("unreadable settlement in the journal, skipped: %.200s", line)
                continue
            owed[settlement.hold.hold_id] = settlement
    return owed
