"""JSON bodies for upstream requests, held at their own size while the request is in flight.

``orjson.dumps`` reserves room for the worst-case escaping of each string before writing it
and never hands the slack back: the bytes of a body holding one 200 KB prompt sit in a
2 MB allocation (about 1.3-2x for a conversation of many short messages), and that
allocation lives as long as the upstream call.  At 64 such requests in flight that was
over half of the gateway's resident memory.  A body past ``TIGHT_FROM`` bytes is copied
into an allocation of its length (about 4 us per 200 KB, against 25 us to encode it) and
the oversized one freed at once.  msgspec's encoder keeps ~1.5x, and gets the same.

A pass-through's conversation is not decoded (:mod:`tollway.raw_body`): it is a
:class:`Spans`, each message the raw JSON it came as, which :func:`encode_body` writes into
the upstream body in the same pass as the rest.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from msgspec import Raw

# Below this, the slack is a few pages at most: not worth a copy.
TIGHT_FROM = 32 * 1024


def tight(encoded: bytes) -> bytes:
    """``encoded`` in an allocation of its own length when it is large."""
    return bytes(memoryview(encoded)) if len(encoded) >= TIGHT_FROM else encoded


def dumps_tight(obj: Any) -> bytes:
    """``orjson.dumps(obj)`` held at its length (see the module docstring)."""
    return tight(orjson.dumps(obj))


_MSGSPEC = msgspec.json.Encoder()


class Spans(list[Raw]):
    """A JSON array held as the raw JSON of each element (msgspec spans of the client's body).

    :func:`encode_body` writes the spans straight into the upstream body, each copied once.
    orjson cannot write spans: joining them into one ``orjson.Fragment`` first copied a
    200 KB conversation twice more per request (the array, then the body around it), and
    kept the array for as long as the call lasted."""

    __slots__ = ()

    def json(self) -> bytes:
        """The array as one JSON document, for what must decode it (a translation, an estimate)."""
        return tight(_MSGSPEC.encode(self))


def encode_body(body: dict[str, Any]) -> bytes:
    """``body`` as JSON held at its length: written by msgspec when a value is :class:`Spans`
    (a pass-through's conversation), by orjson otherwise (faster on decoded strings)."""
    if Spans in map(type, body.values()):
        return tight(_MSGSPEC.encode(body))
    return dumps_tight(body)
