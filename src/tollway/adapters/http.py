"""What every adapter does over HTTP: timeouts, and upstream failures mapped to UpstreamError."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tollway.config import TimeoutSettings
from tollway.errors import UpstreamError

# Statuses that are the caller's own mistake: another provider would refuse it too.
CALLER_ERRORS = frozenset({400, 413, 422})
MAX_RAW_ERROR_BYTES = 4096
log = logging.getLogger("tollway.upstream")


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """aiohttp timeouts built once from the settings."""

    complete: aiohttp.ClientTimeout
    # A stream's: connecting only.  Its first byte is bounded by the attempt loop
    # (``first_byte_s``), its later reads by :class:`WatchedReads` (``idle_s``, ``total_s``).
    stream: aiohttp.ClientTimeout
    first_byte_s: float
    idle_s: float
    total_s: float

    @classmethod
    def from_settings(cls, t: TimeoutSettings) -> ClientTimeouts:
        return cls(
            complete=aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.first_byte),
            stream=aiohttp.ClientTimeout(total=None, connect=t.connect),
            first_byte_s=t.first_byte,
            idle_s=t.idle,
            total_s=t.total,
        )


class WatchedReads:
    """A streamed response's reads: each answered within ``idle_s`` of being asked for, all
    within ``total_s`` of the attempt's start (``started``, on the event loop's clock), under
    one timer for the whole stream.

    aiohttp's own bounds (``sock_read``, ``total``) re-arm a timer and enter a timeout
    context on every read: with a token per read, as models stream, 5 % of a streamed
    request's instructions.  Here a read only notes when it began waiting; the timer, when
    it fires, moves itself to the next moment a bound could be passed, or, past one, closes
    the response, and the pending read raises :class:`aiohttp.ServerTimeoutError`, as
    ``sock_read`` would have.  Time the relay spends on the client (a slow reader holding it
    back) is not the upstream's idling and does not count.  Iterate it as
    ``resp.content.iter_any()``; :meth:`close` (or the end of the stream) disarms the timer.
    """

    __slots__ = ("_clock", "_content", "_deadline", "_handle", "_idle", "_loop", "_resp", "expired", "waiting_since")

    def __init__(self, resp: aiohttp.ClientResponse, timeouts: ClientTimeouts, started: float) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._clock = loop, loop.time
        self._resp, self._content = resp, resp.content
        self._idle = timeouts.idle_s
        self._deadline = started + timeouts.total_s
        self.waiting_since: float | None = None  # when the pending read began, if one is
        self.expired: str | None = None  # the bound that was passed
        self._handle: asyncio.TimerHandle | None = loop.call_at(min(loop.time() + self._idle, self._deadline),
                                                                self._check)

    def _check(self) -> None:
        now = self._clock()
        waiting_since = self.waiting_since
        if now >= self._deadline:
            self.expired = "timeouts.total"
        elif waiting_since is not None and now >= waiting_since + self._idle:
            self.expired = "timeouts.idle"
        else:
            since = now if waiting_since is None else waiting_since
            self._handle = self._loop.call_at(min(since + self._idle, self._deadline), self._check)
            return
        self._handle = None
        self._resp.close()  # the pending read (or the next) raises; __anext__ says why

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def __aiter__(self) -> WatchedReads:
        return self

    async def __anext__(self) -> bytes:
        self.waiting_since = self._clock()
        try:
            data = await self._content.readany()
        except aiohttp.ClientError:
            self.close()
            if self.expired is not None:
                raise aiohttp.ServerTimeoutError(f"no data within the bound ({self.expired})") from None
            raise
        except BaseException:
            self.close()
            raise
        self.waiting_since = None
        if not data:
            self.close()
            raise StopAsyncIteration
        return data


def error_from_exception(exc: BaseException, provider: str) -> UpstreamError:
    """A transport failure (connect error, timeout, reset) as a retryable UpstreamError.

    The message names the cause (DNS, refused, TLS, timeout...) and the host, and the
    failure is logged the same way; neither carries a header, so no key can leak.
    """
    cause = transport_cause(exc)
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        message = f"provider {provider} timed out ({cause})"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        message = f"could not connect to provider {provider}: {cause}"
    else:
        message = f"provider {provider} failed: {cause}"
    log.warning("%s", message)
    return UpstreamError(message, provider=provider, retryable=True)


def transport_cause(exc: BaseException) -> str:
    """Why a connection failed, in words an operator can act on."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        where = f"{exc.host}:{exc.port}"
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return f"DNS lookup of {exc.host} failed ({_os_detail(exc)}); check the provider's base_url"
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return f"TLS certificate of {where} not trusted ({exc.certificate_error})"
        if isinstance(exc, aiohttp.ClientSSLError):
            return f"TLS handshake with {where} failed ({_os_detail(exc)})"
        if isinstance(exc.os_error, ConnectionRefusedError):
            return f"connection refused by {where} (nothing listening there?)"
        return f"cannot reach {where} ({_os_detail(exc)})"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect timeout (timeouts.connect)"
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return "no answer within the configured timeouts (timeouts.first_byte / idle / total)"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    return type(exc).__name__ + (f": {exc}" if str(exc) else "")


def _os_detail(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    return os_error.strerror or str(os_error) or type(os_error).__name__


def error_from_response(status: int, body: bytes, provider: str) -> UpstreamError:
    """An upstream's error answer: its status named, its body kept in ``metadata.raw``."""
    raw = body[:MAX_RAW_ERROR_BYTES].decode("utf-8", "replace")
    detail = _upstream_message(body)
    message = f"provider {provider} returned HTTP {status}" + (f": {detail}" if detail else "")
    return UpstreamError(message, provider=provider, upstream_status=status, raw=raw,
                         retryable=status not in CALLER_ERRORS)


def _upstream_message(body: bytes) -> str | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:500]
        if isinstance(err, str):
            return err[:500]
        if isinstance(doc.get("message"), str):
            return str(doc["message"])[:500]
    return None


async def post_json(session: aiohttp.ClientSession, url: str, payload: bytes, headers: dict[str, str],
                    timeout: aiohttp.ClientTimeout, provider: str) -> tuple[Any, bytes, int]:
    """POST a JSON body and read the whole answer: ``(parsed JSON or None, raw bytes, status)``.

    Transport failures and HTTP errors come out as :class:`UpstreamError`; deciding
    whether a 200 body has the right shape is the calling adapter's job.
    """
    try:
        async with session.post(url, data=payload, headers=headers, timeout=timeout) as resp:
            raw = await resp.read()
            status = resp.status
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise error_from_exception(exc, provider) from exc
    if status >= 400:
        raise error_from_response(status, raw, provider)
    try:
        return orjson.loads(raw), raw, status
    except orjson.JSONDecodeError:
        return None, raw, status


async def ensure_event_stream(resp: aiohttp.ClientResponse, provider: str) -> None:
    """Raise :class:`UpstreamError` unless a stream request got a 2xx ``text/event-stream``."""
    if resp.status >= 400:
        raise error_from_response(resp.status, await resp.read(), provider)
    ctype = resp.headers.get("Content-Type", "")
    if "text/event-stream" not in ctype:
        raw = await resp.read()
        raise UpstreamError(f"provider {provider} answered a stream request with {ctype or 'no content type'}",
                            provider=provider, upstream_status=resp.status,
                            raw=raw[:2048].decode("utf-8", "replace"))
