"""Reading SSE event blocks from an upstream: the blocks come out whole and in order,
however the network cuts the bytes."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.adapters.http import ClientTimeouts
from tollway.adapters.sse import iter_blocks
from tollway.config import TimeoutSettings

# Event lines as upstreams write them, and the bytes a relay must not trip over: single
# newlines inside a block, escaped newlines and non-ASCII in the data.
_LINES = st.sampled_from([b"event: response.output_text.delta", b"event: message_delta", b": keep-alive",
                          b'data: {"type":"x","delta":"a\\n\\nb"}', b"data: [DONE]", b"id: 7",
                          "data: {\"t\":\"\u00e9\u2603\"}".encode(), b"data: {}"])
_BLOCKS = st.lists(st.lists(_LINES, min_size=1, max_size=3).map(b"\n".join), min_size=1, max_size=30)


class _Content:
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = iter([p for p in pieces if p])  # aiohttp's readany returns b"" only at the end

    async def readany(self) -> bytes:
        return next(self.pieces, b"")  # b"": the end of the body, as aiohttp says it


class _Response:  # the parts of aiohttp.ClientResponse that iter_blocks reads
    def __init__(self, pieces: list[bytes]) -> None:
        self.content = _Content(pieces)

    def close(self) -> None:
        raise AssertionError("no bound is passed here")


TIMEOUTS = ClientTimeouts.from_settings(TimeoutSettings())


def _blocks(pieces: list[bytes]) -> list[list[bytes]]:
    async def read() -> list[list[bytes]]:
        started = asyncio.get_running_loop().time()
        return [batch async for batch in iter_blocks(_Response(pieces), TIMEOUTS, started)]  # type: ignore[arg-type]
    return asyncio.run(read())


@settings(max_examples=300, deadline=None)
@given(_BLOCKS, st.data())
def test_blocks_whole_and_in_order_however_cut(blocks: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(block + b"\n\n" for block in blocks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    batches = _blocks(pieces)
    assert all(batches)  # no empty batch is yielded
    assert [b for batch in batches for b in batch] == blocks


def test_one_read_is_one_batch_blank_runs_dropped_and_an_unterminated_tail_still_comes_out() -> None:
    stream = b"event: a\ndata: 1\n\n\n\nevent: b\ndata: 2\n\n"
    assert _blocks([stream]) == [[b"event: a\ndata: 1", b"event: b\ndata: 2"]]
    assert _blocks([stream + b"data: 3\n"]) == [[b"event: a\ndata: 1", b"event: b\ndata: 2"], [b"data: 3"]]
