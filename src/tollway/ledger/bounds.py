"""What a generation record's fields may hold, derived once from the ledger's schema.

Every value that ends up in a ``generations`` row comes from outside: request headers
(``HTTP-Referer``, ``X-Title``, ``X-Session-Id``), the body (``session_id``, ``model``) and
the upstream's answer (``id``, ``finish_reason``, usage counts).  One value the database
refuses (a ``varchar(200)`` given 300 characters, a NUL byte PostgreSQL cannot store in
text, a lone surrogate no driver can encode, a count past a ``bigint``) used to fail the
whole batch it travelled in.  So each value is cleaned where it enters, with the functions
here, and :func:`bounded_record` applies the same rule once more when the record is built.

The rule: text loses NUL bytes and unpaired surrogates and is cut to its column's length
(in characters, PostgreSQL's measure); integers are clamped to their column's range; token
counts and costs to a per-generation ceiling low enough that summing them into rollups and
key spend can't overflow a signed 64-bit column (:data:`MAX_TOKENS`, :data:`MAX_COST_NANOUSD`).
"""

from __future__ import annotations

import math
from operator import attrgetter
from typing import Any

import orjson
from sqlalchemy import BigInteger, Integer, String, Text

from tollway.ledger.records import GenerationRecord
from tollway.ledger.schema import generations

# Far above any real generation (the largest context windows are ~10M tokens), and
# 8,192 generations at the ceiling still sum to less than 2**63 in a rollup cell.
MAX_TOKENS = 2**40
# $1.1M for one generation; 8,192 of them still fit a key's signed 64-bit spend.
MAX_COST_NANOUSD = 2**50
# Text columns without a declared length (error messages): enough to diagnose, bounded.
MAX_FREE_TEXT = 4000

_BIGINT = (-(2**63), 2**63 - 1)
_INT = (-(2**31), 2**31 - 1)
_COUNT_COLUMNS = ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
                  "reasoning_tokens")


def _limits() -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    text: dict[str, int] = {}
    ints: dict[str, tuple[int, int]] = {}
    for column in generations.columns:
        kind = column.type
        if isinstance(kind, String) and not isinstance(kind, Text) and kind.length:
            text[column.name] = kind.length
        elif isinstance(kind, Text):
            text[column.name] = MAX_FREE_TEXT
        elif isinstance(kind, BigInteger):  # before Integer: a subclass
            ints[column.name] = _BIGINT
        elif isinstance(kind, Integer):
            ints[column.name] = _INT
    for name in _COUNT_COLUMNS:
        ints[name] = (0, MAX_TOKENS)
    ints["cost_nanousd"] = (0, MAX_COST_NANOUSD)
    return text, ints


# Column name -> maximum characters / (lowest, highest) integer, from the schema.
TEXT_LIMITS, INT_RANGES = _limits()
_JSON_COLUMNS = ("attempts", "extra")
_TEXT_FIELDS = tuple(n for n in TEXT_LIMITS if n not in _JSON_COLUMNS)
_INT_FIELDS = tuple(INT_RANGES)


def clean_text(value: str, limit: int) -> str:
    """``value`` without NUL bytes or unpaired surrogates, cut to ``limit`` characters."""
    if not value.isascii():
        # Encoding with "ignore" drops exactly the code points UTF-8 cannot carry: surrogates.
        value = value.encode("utf-8", "ignore").decode("utf-8")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value if len(value) <= limit else value[:limit]


def bound_text(column: str, value: object) -> str | None:
    """A value for the text column ``column`` of ``generations`` (None stays None)."""
    if value is None:
        return None
    return clean_text(value if isinstance(value, str) else str(value), TEXT_LIMITS[column])


def bound_int(column: str, value: int) -> int:
    low, high = INT_RANGES[column]
    return low if value < low else high if value > high else value


def token_count(value: Any) -> int:
    """A usage count as an upstream reported it: a non-negative integer up to :data:`MAX_TOKENS`.

    Anything else (a string, a bool, null, NaN, a negative number) counts as 0; a float is
    truncated, since some OpenAI-compatible servers send ``12.0``.
    """
    if isinstance(value, bool):
        return 0
    if isinstance(value, float):
        if not math.isfinite(value):
            return MAX_TOKENS if value > 0 else 0
        value = int(value)
    if not isinstance(value, int) or value <= 0:
        return 0
    return value if value <= MAX_TOKENS else MAX_TOKENS


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value, MAX_FREE_TEXT)
    if isinstance(value, dict):
        return {clean_text(str(k), 200): _clean_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return bound_int("cost_nanousd", value) if value >= 0 else max(value, _BIGINT[0])
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if value is None or isinstance(value, bool | float) else str(value)


def _json_ok(value: Any) -> bool:
    try:
        text = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return b"\\u0000" not in text


def _storable_int(value: Any, low: int, high: int) -> int:
    if value.__class__ is not int:  # a bool or float that slipped through
        value = int(value) if isinstance(value, int | float) and math.isfinite(value) else 0
    return low if value < low else high if value > high else int(value)


_TEXT_SPECS = tuple((name, TEXT_LIMITS[name]) for name in _TEXT_FIELDS)
_INT_SPECS = tuple((name, *INT_RANGES[name]) for name in _INT_FIELDS)
_GET_TEXT = attrgetter(*_TEXT_FIELDS)
_GET_INT = attrgetter(*_INT_FIELDS)


def bounded_record(record: GenerationRecord) -> GenerationRecord:
    """``record`` with every field cleaned and bounded in place (and returned), so the
    database can always store it.  A few microseconds when the fields are already fine
    (on the response path: values were bounded where they entered)."""
    for (name, limit), text in zip(_TEXT_SPECS, _GET_TEXT(record), strict=True):
        if text is not None and (text.__class__ is not str or len(text) > limit or "\x00" in text
                                 or not text.isascii()):
            setattr(record, name, bound_text(name, text))
    for (name, low, high), number in zip(_INT_SPECS, _GET_INT(record), strict=True):
        if number is not None and (number.__class__ is not int or not low <= number <= high):
            setattr(record, name, _storable_int(number, low, high))
    if not record.model:
        record.model = "(none)"
    if record.attempts is not None and not _json_ok(record.attempts):
        record.attempts = _clean_json(record.attempts)
    if record.extra is not None and not _json_ok(record.extra):
        record.extra = _clean_json(record.extra)
    return record
