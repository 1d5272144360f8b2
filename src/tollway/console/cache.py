"""A small, short-lived cache of rendered JSON answers (the rankings behind the console).

Rankings are weekly aggregates over the whole history: recomputing them for every page
view costs the same Python aggregation each time, while the answer changes slowly.  Each
entry is keyed by who asks (admin, a key id, or the public) and the exact query, lives
``ttl_s`` seconds, and the cache holds at most ``max_entries`` (the oldest go first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class ResponseCache:
    def __init__(self, max_entries: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()

    def get(self, key: tuple[str, str]) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: tuple[str, str], body: bytes, ttl_s: float) -> None:
        self._entries[key] = (self._clock() + ttl_s, body)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
