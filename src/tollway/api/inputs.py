"""Bounds on what clients send to the HTTP API, written once for every endpoint.

Anything a handler stores or computes with passes through here first, so a value the
ledger could not hold (a NUL byte in PostgreSQL text, an amount beyond BIGINT, a date
whose period arithmetic leaves ``datetime``'s range) is a 400 naming the field and the
accepted range, never a 500 from the database or the standard library.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

from tollway.errors import BadRequest
from tollway.metering import usd_to_nano

# One billion USD: nano-dollar sums of many keys stay far inside a signed 64-bit column.
MAX_USD = Decimal(1_000_000_000)
MAX_NANOUSD = usd_to_nano(MAX_USD)
# rpm/tpm are INTEGER columns (signed 32 bits).
MAX_RATE = 2**31 - 1
# Analytics dates: period arithmetic (previous week/month, the day after ``to``) stays in range.
FIRST_DATE = date(1970, 1, 1)
LAST_DATE = date(9998, 12, 31)
# Query-string counts (``top``): more rows than any report has, small enough to compute with.
MAX_QUERY_INT = 1_000_000
# Identifiers in paths and query strings: longer than any id tollway issues.
MAX_ID_CHARS = 100


def text(value: Any, name: str, *, max_chars: int, required: bool = False) -> str | None:
    """A client string bounded for the ledger: no NUL (PostgreSQL text refuses it), at most ``max_chars``."""
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required: a string of at most {max_chars} characters", code=400)
        return None
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string of at most {max_chars} characters", code=400)
    if "\x00" in value:
        raise BadRequest(f"'{name}' must not contain NUL (\\u0000) characters", code=400)
    if len(value) > max_chars:
        raise BadRequest(f"'{name}' is {len(value)} characters long; the limit is {max_chars}", code=400)
    return value


def usd(value: Any, name: str) -> int:
    """A USD amount from JSON (number or numeric string) as nano-dollars, 0..MAX_USD."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadRequest(f"'{name}' must be a number of USD, e.g. 10 or 2.5", code=400)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise BadRequest(f"'{name}' must be a number of USD, e.g. 10 or 2.5", code=400) from None
    if not amount.is_finite() or amount < 0 or amount > MAX_USD:
        raise BadRequest(f"'{name}' must be between 0 and {MAX_USD} USD", code=400)
    return usd_to_nano(amount)


def rate(value: Any, name: str) -> int | None:
    """A per-minute limit: null, or an integer from 1 to MAX_RATE."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_RATE:
        raise BadRequest(f"'{name}' must be an integer from 1 to {MAX_RATE}, or null", code=400)
    return value


def timestamp(value: Any, name: str) -> datetime | None:
    """An ISO 8601 timestamp as naive UTC (the ledger's convention); null stays null."""
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise BadRequest(f"'{name}' must be an ISO 8601 timestamp such as 2027-01-31T00:00:00Z, or null",
                         code=400)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    except ValueError:
        raise BadRequest(f"'{name}' {value[:60]!r} is not an ISO 8601 timestamp", code=400) from None
    except OverflowError:  # e.g. 9999-12-31T23:59:59-05:00 is past year 9999 in UTC
        raise BadRequest(f"'{name}' {value[:60]!r} is out of range; use a date before 9999-12-31",
                         code=400) from None
    return parsed


def query_int(params: Any, name: str, default: int | None, *, maximum: int = MAX_QUERY_INT) -> int | None:
    """``?name=N``: a non-negative decimal integer up to ``maximum`` (ASCII digits only)."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 12 or int(value) > maximum:
        raise BadRequest(f"query parameter {name}={value[:40]!r} must be an integer from 0 to {maximum}",
                         code=400)
    return int(value)


def query_date(params: Any, name: str) -> date | None:
    """``?name=YYYY-MM-DD`` between FIRST_DATE and LAST_DATE."""
    value = params.get(name)
    if not value:
        return None
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"query parameter {name}={value[:40]!r} is not a date; use YYYY-MM-DD", code=400) from None
    if not FIRST_DATE <= parsed <= LAST_DATE:
        raise BadRequest(f"query parameter {name}={value} is out of range; use a date from "
                         f"{FIRST_DATE} to {LAST_DATE}", code=400)
    return parsed


def query_texts(params: Any, name: str, *, max_chars: int = 200) -> list[str]:
    """Every ``?name=...`` value, each bounded like :func:`text` (a filter the ledger can compare)."""
    values: list[str] = params.getlist(name)
    for value in values:
        if "\x00" in value or len(value) > max_chars:
            raise BadRequest(f"query parameter {name} must be at most {max_chars} characters without NUL",
                             code=400)
    return values


def query_text(params: Any, name: str, default: str | None = None) -> str | None:
    """The last ``?name=...`` value (Starlette's ``get``), bounded; ``default`` when absent or empty."""
    values = query_texts(params, name)
    return values[-1] if values and values[-1] else default


def lookup_id(value: str | None) -> str | None:
    """An id from a path or query string, or None when no stored id could match it.

    Callers answer None with their usual 404: an id with a NUL byte or of absurd length
    names nothing, and must not reach the database (PostgreSQL rejects NUL in text).
    """
    if value is None or "\x00" in value or len(value) > MAX_ID_CHARS:
        return None
    return value


def nul_in_url(path: str, query_string: bytes) -> BadRequest | None:
    """The 400 for a URL carrying a NUL byte, checked once for every endpoint.

    No id, filter or name tollway stores can contain NUL (PostgreSQL text refuses it), so
    such a URL can only be a mistake or a probe; refusing it at the edge keeps it away from
    every query built from a path or query parameter.
    """
    if "\x00" in path:
        return BadRequest("the URL path contains a NUL byte (%00); remove it", code=400)
    if b"%00" in query_string or b"\x00" in query_string:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        names = [name[:40] for name, value in pairs if "\x00" in name or "\x00" in value]
        where = f"query parameter {names[0]!r}" if names else "the query string"
        return BadRequest(f"{where} contains a NUL byte (%00); remove it", code=400)
    return None
