"""Upstream request bodies are held at their own length, not in orjson's worst-case buffer."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
import pytest

from tollway.adapters.base import Target
from tollway.adapters.openai import build_upstream_body
from tollway.catalog import build_catalog
from tollway.config import parse_settings
from tollway.json_body import TIGHT_FROM, Spans, dumps_tight, encode_body, tight

PROMPT = ("The quick brown fox jumps over the lazy dog. " * 5000)[:200_000]
BODY = {"model": "bench/echo", "max_tokens": 16,
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": PROMPT}]}


def held(make: Callable[[], Any]) -> tuple[Any, int]:
    """What ``make()`` returns and the bytes its allocations still hold after it returned."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        out = make()
        return out, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_dumps_tight_holds_the_body_at_its_length() -> None:
    encoded, kept = held(lambda: dumps_tight(BODY))
    assert encoded == orjson.dumps(BODY)
    assert len(encoded) <= kept < len(encoded) + 1024


def test_small_bodies_are_returned_as_encoded() -> None:
    small = orjson.dumps({"messages": [{"role": "user", "content": "hi"}]})
    assert tight(small) is small
    big = b"x" * TIGHT_FROM
    assert tight(big) == big


def openai_target() -> Target:
    settings = parse_settings({
        "catalog": False,
        "providers": [{"name": "p", "base_url": "http://127.0.0.1:9", "local": True}],
        "models": [{"id": "t/m", "endpoints": [{"provider": "p", "model": "m"}]}],
    }, source="test")
    catalog = build_catalog(settings, env={})
    model = catalog.models["t/m"]
    (endpoint, provider), = catalog.active_endpoints(model)
    return Target(model=model, endpoint=endpoint, provider=provider)


def test_the_openai_upstream_body_is_tight() -> None:
    target = openai_target()
    encoded, kept = held(lambda: build_upstream_body(target, BODY, stream=True))
    assert orjson.loads(encoded)["messages"][1]["content"] == PROMPT
    assert kept < len(encoded) + 4096


def pass_through_spans() -> Spans:
    """A conversation as a pass-through reads it: each message the raw JSON it came as (one
    spelt with spaces and escapes that orjson would write otherwise)."""
    messages = [orjson.dumps({"role": "user" if i % 2 == 0 else "assistant", "content": PROMPT[:2000]})
                for i in range(99)]
    return Spans(map(msgspec.Raw, [*messages, b'{ "role" : "user", "content": "\\u00e9 \\/ go on" }']))


def test_pass_through_spans_are_tight() -> None:
    spans = pass_through_spans()
    encoded, kept = held(spans.json)
    assert [m["content"] for m in orjson.loads(encoded)] == [PROMPT[:2000]] * 99 + ["\u00e9 / go on"]
    assert kept < len(encoded) + 1024


def test_a_body_around_spans_carries_them_as_they_came_and_is_tight() -> None:
    spans = pass_through_spans()
    body = {"model": "m", "max_tokens": 16, "messages": spans, "metadata": {"user_id": "u"}, "top_p": 0.5}
    encoded, kept = held(lambda: encode_body(body))
    assert kept < len(encoded) + 1024
    assert orjson.loads(encoded) == {**body, "messages": [orjson.loads(bytes(span)) for span in spans]}
    # The spans are written verbatim, in order, one after another: nothing re-encoded.
    assert b'"messages":[' + b",".join(map(bytes, spans)) + b"]" in encoded


def test_a_body_without_spans_is_what_orjson_writes() -> None:
    assert encode_body(BODY) == orjson.dumps(BODY)


@pytest.mark.parametrize("value", [PROMPT, "é" * 70_000, "\u2028\n\"" * 20_000, [PROMPT[:40_000]] * 5])
def test_every_kind_of_string_round_trips(value: Any) -> None:
    assert orjson.loads(dumps_tight({"v": value})) == {"v": value}
