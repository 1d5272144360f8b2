"""tollway.ledger.ahead: records arriving close together share one write and ``fsync``."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

from tollway.ledger.ahead import AheadLog
from tollway.ledger.records import GenerationRecord


def test_records_arriving_together_share_an_fsync(tmp_path: Path) -> None:
    forwarded: list[GenerationRecord] = []
    done = threading.Event()

    def forward(group: object) -> None:
        assert isinstance(group, list)
        forwarded.extend(group)
        if len(forwarded) == 20:
            done.set()

    ahead = AheadLog(tmp_path / "j", forward)
    ahead.start()
    # Twenty records 0.5 ms apart (a busy gateway's pace): each fsync (~0.1 ms here) would be
    # over before the next record came, so without the linger each took its own.
    for i in range(20):
        ahead.put(GenerationRecord(id=f"gen-{i}", key_id=None, created_at=datetime(2026, 12, 7), model="m/x"))
        time.sleep(0.0005)
    assert done.wait(10)
    ahead.stop(10)
    ahead.close()
    assert [r.id for r in forwarded] == [f"gen-{i}" for i in range(20)]  # all of them, in order
    # 20 records over >= 10 ms: at least two groups, and no more than the linger allows
    # (one per 5 ms linger, plus the one the last record may open).
    assert 2 <= ahead.fsyncs <= 6, ahead.fsyncs
