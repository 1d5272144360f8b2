"""A streamed response's reads under one timer (tollway.adapters.http.WatchedReads): a stall
past ``timeouts.idle`` and a trickle past ``timeouts.total`` end the stream with a timeout
error, and a relay held back by its client is not the upstream's idling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from tollway.adapters.http import ClientTimeouts, WatchedReads
from tollway.config import TimeoutSettings

Handler = Callable[[web.StreamResponse], Awaitable[None]]


async def _serve(write: Handler) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await write(resp)
        return resp

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, handler_cancellation=True)  # a stalled handler ends with its client
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/"


async def _read_all(write: Handler, idle: float, total: float,
                    between_reads: float = 0.0) -> tuple[list[bytes], BaseException | None]:
    runner, url = await _serve(write)
    timeouts = ClientTimeouts.from_settings(TimeoutSettings(idle=idle, total=total, first_byte=total))
    got: list[bytes] = []
    error: BaseException | None = None
    try:
        async with aiohttp.ClientSession() as session:
            started = asyncio.get_running_loop().time()
            async with session.get(url, timeout=timeouts.stream) as resp:
                reads = WatchedReads(resp, timeouts, started)
                try:
                    async with asyncio.timeout(10):  # a bound the watch missed fails here, not hangs
                        async for data in reads:
                            got.append(data)
                            await asyncio.sleep(between_reads)
                except aiohttp.ClientError as exc:
                    error = exc
                finally:
                    reads.close()
    finally:
        await runner.cleanup()
    return got, error


def _chunks(n: int, every: float, then: Callable[[], Awaitable[None]] | None = None) -> Handler:
    async def write(resp: web.StreamResponse) -> None:
        for i in range(n):
            await resp.write(b"data: %d\n\n" % i)
            await asyncio.sleep(every)
        if then is not None:
            await then()
        await resp.write_eof()
    return write


async def _forever() -> None:
    await asyncio.sleep(3600)


@pytest.mark.asyncio
async def test_a_stall_past_the_idle_bound_ends_the_stream_as_a_timeout() -> None:
    got, error = await _read_all(_chunks(2, 0.0, then=_forever), idle=0.3, total=30)
    assert b"".join(got) == b"data: 0\n\ndata: 1\n\n"
    assert isinstance(error, aiohttp.ServerTimeoutError) and "timeouts.idle" in str(error)
    assert isinstance(error, TimeoutError)  # mapped like aiohttp's own sock_read timeout


@pytest.mark.asyncio
async def test_a_trickle_past_the_total_bound_ends_the_stream_as_a_timeout() -> None:
    # A chunk every 50 ms never lets the idle bound (0.3 s) pass; the total one (0.6 s) does.
    got, error = await _read_all(_chunks(1000, 0.05), idle=0.3, total=0.6)
    assert 3 <= len(got) < 1000
    assert isinstance(error, aiohttp.ServerTimeoutError) and "timeouts.total" in str(error)


@pytest.mark.asyncio
async def test_time_spent_on_a_slow_client_is_not_the_upstream_idling() -> None:
    # The upstream sends everything at once; the relay then takes 0.4 s per read (its client
    # is slow), longer than the idle bound: the stream still ends normally.
    got, error = await _read_all(_chunks(3, 0.0), idle=0.2, total=30, between_reads=0.4)
    assert error is None
    assert b"".join(got) == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


@pytest.mark.asyncio
async def test_the_timer_is_disarmed_when_the_stream_ends() -> None:
    runner, url = await _serve(_chunks(2, 0.0))
    timeouts = ClientTimeouts.from_settings(TimeoutSettings(idle=0.2, total=0.4))
    try:
        async with aiohttp.ClientSession() as session, session.get(url, timeout=timeouts.stream) as resp:
            reads = WatchedReads(resp, timeouts, asyncio.get_running_loop().time())
            got = [data async for data in reads]
            await asyncio.sleep(0.6)  # past both bounds: a timer still armed would fire now
            assert reads.expired is None and b"".join(got) == b"data: 0\n\ndata: 1\n\n"
    finally:
        await runner.cleanup()
