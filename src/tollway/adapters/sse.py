"""Reading server-sent events from an upstream, for adapters that must parse every event.

The OpenAI adapter has its own byte-level relay (most of its events are rewritten
without parsing); the Anthropic and Gemini adapters translate each event, so they read
the stream as ``(event name, data, raw bytes)`` triples.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from tollway.adapters.http import ClientTimeouts, WatchedReads

# The blank line that ends an event.  Splitting on it with a compiled pattern gives what
# ``bytes.split(b"\n\n")`` gives in about half the time (CPython's multi-byte split
# searches afresh for every piece; ~1 ns/byte here): a 64-token Responses stream is
# ~16 KB in ~70 events per read.
_EVENT_END = re.compile(b"\n\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One event: its ``event:`` name (None when absent), its joined ``data:`` lines, the raw block."""

    name: str | None
    data: bytes
    raw: bytes


def parse_block(block: bytes) -> SSEEvent | None:
    """One event block (without its blank-line terminator); None for comments-only blocks."""
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    if name is None and not data:
        return None
    return SSEEvent(name=name, data=b"\n".join(data), raw=block + b"\n\n")


async def iter_blocks(resp: aiohttp.ClientResponse, timeouts: ClientTimeouts,
                      started: float) -> AsyncIterator[list[bytes]]:
    """Batches of complete raw event blocks (without their blank-line terminators), one
    batch per network read: for relays that parse only the few events they must.  The reads
    are bounded by ``timeouts`` (:class:`~tollway.adapters.http.WatchedReads`; ``started``:
    when the attempt began, on the event loop's clock)."""
    reads = WatchedReads(resp, timeouts, started)
    buffer = b""
    try:
        async for data in reads:
            buffer = buffer + data if buffer else data
            if b"\r" in buffer:
                # Gemini terminates events with CRLF pairs; normalise once per read.
                if buffer.endswith(b"\r"):
                    continue  # the matching \n is still in flight
                buffer = buffer.replace(b"\r\n", b"\n")
            cut = buffer.rfind(b"\n\n")
            if cut < 0:
                continue
            complete, buffer = buffer[:cut], buffer[cut + 2:]
            blocks = [b for b in _EVENT_END.split(complete) if b]
            if blocks:
                yield blocks
        if buffer.strip():
            yield [buffer.strip(b"\n")]
    finally:
        reads.close()


async def iter_events(resp: aiohttp.ClientResponse, timeouts: ClientTimeouts,
                      started: float) -> AsyncIterator[list[SSEEvent]]:
    """Batches of complete events, as they arrive (one batch per network read)."""
    async for blocks in iter_blocks(resp, timeouts, started):
        batch = [e for e in map(parse_block, blocks) if e is not None]
        if batch:
            yield batch
