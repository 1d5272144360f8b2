"""What every adapter does over HTTP: timeouts, and upstream failures mapped to UpstreamError."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from tollway.config import TimeoutSettings
from tollway.errors import UpstreamError

# Statuses that are the caller's own mistake: another provider would refuse it too.
CALLER_ERRORS = frozenset({400, 413, 422})
MAX_RAW_ERROR_BYTES = 4096


@dataclass(frozen=True, slots=True)
class ClientTimeouts:
    """aiohttp timeouts built once from the settings."""

    complete: aiohttp.ClientTimeout
    stream: aiohttp.ClientTimeout
    first_byte_s: float

    @classmethod
    def from_settings(cls, t: TimeoutSettings) -> ClientTimeouts:
        return cls(
            complete=aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.first_byte),
            # sock_read bounds every read: the first one is guarded separately (first_byte_s).
            stream=aiohttp.ClientTimeout(total=t.total, connect=t.connect, sock_read=t.idle),
            first_byte_s=t.first_byte,
        )


def error_from_exception(exc: BaseException, provider: str) -> UpstreamError:
    """A transport failure (connect error, timeout, reset) as a retryable UpstreamError."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamError(f"provider {provider} timed out", provider=provider, retryable=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(f"could not connect to provider {provider}", provider=provider,
                             retryable=True)
    return UpstreamError(f"provider {provider} failed: {type(exc).__name__}", provider=provider,
                         retryable=True)


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
