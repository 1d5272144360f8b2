"""JSON bodies for upstream requests, held at their own size while the request is in flight.

``orjson.dumps`` reserves room for the worst-case escaping of each string before writing it
and never hands the slack back: the bytes of a body holding one 200 KB prompt sit in a
2 MB allocation (about 1.3-2x for a conversation of many short messages), and that
allocation lives as long as the upstream call.  At 64 such requests in flight that was
over half of the gateway's resident memory.  A body past ``TIGHT_FROM`` bytes is copied
into an allocation of its length (about 4 us per 200 KB, against 25 us to encode it) and
the oversized one freed at once.  msgspec's encoder keeps ~1.5x, and gets the same.
"""

from __future__ import annotations

from typing import Any

import orjson

# Below this, the slack is a few pages at most: not worth a copy.
TIGHT_FROM = 32 * 1024


def tight(encoded: bytes) -> bytes:
    """``encoded`` in an allocation of its own length when it is large."""
    return bytes(memoryview(encoded)) if len(encoded) >= TIGHT_FROM else encoded


def dumps_tight(obj: Any) -> bytes:
    """``orjson.dumps(obj)`` held at its length (see the module docstring)."""
    return tight(orjson.dumps(obj))
