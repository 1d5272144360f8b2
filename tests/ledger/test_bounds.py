"""The field-bounding rule (tollway.ledger.bounds), derived from the schema."""

from __future__ import annotations

from datetime import datetime

import pytest

from tollway.ledger import schema
from tollway.ledger.bounds import (
    MAX_COST_NANOUSD,
    MAX_TOKENS,
    TEXT_LIMITS,
    bound_text,
    bounded_record,
    clean_text,
    token_count,
)
from tollway.ledger.records import GenerationRecord


def test_text_limits_follow_the_schema() -> None:
    for column in schema.generations.columns:
        length = getattr(column.type, "length", None)
        if length:
            assert TEXT_LIMITS[column.name] == length


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", "plain"),
    ("nul\x00byte", "nulbyte"),
    ("lone\ud800surrogate", "lonesurrogate"),
    ("émoji 😀", "émoji 😀"),
    ("x" * 250, "x" * 200),
])
def test_clean_text(value: str, expected: str) -> None:
    assert clean_text(value, 200) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (12, 12), (2**63, MAX_TOKENS), (-5, 0), (True, 0), ("12", 0), (None, 0), (12.9, 12),
    (float("inf"), MAX_TOKENS), (float("nan"), 0), (1e30, MAX_TOKENS),
])
def test_token_count(value: object, expected: int) -> None:
    assert token_count(value) == expected


def test_bounded_record_makes_every_field_storable() -> None:
    record = GenerationRecord(
        id="gen-1", key_id=None, created_at=datetime(2026, 1, 1), model="", upstream_id="u" * 300,
        app="\x00" * 3 + "a" * 600, session_id="s\ud800", prompt_tokens=2**64, completion_tokens=-1,
        cost_nanousd=2**70, finish_reason="f" * 60, latency_ms=2**40, error="e\x00" * 5000,
        attempts=[{"message": "bad\ud800", "status": 2**70}], extra={"k\ud800": "v\x00"})
    bounded_record(record)
    assert record.model == "(none)"
    assert record.upstream_id == "u" * 200 and record.app == "a" * 500 and record.session_id == "s"
    assert record.prompt_tokens == MAX_TOKENS and record.completion_tokens == 0
    assert record.cost_nanousd == MAX_COST_NANOUSD
    assert record.finish_reason == "f" * 40
    assert record.latency_ms == 2**31 - 1
    assert record.error is not None and "\x00" not in record.error and len(record.error) == 4000
    assert record.attempts == [{"message": "bad", "status": MAX_COST_NANOUSD}]
    assert record.extra == {"k": "v"}
    assert bound_text("session_id", None) is None
