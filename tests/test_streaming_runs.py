"""Runs of plain text deltas (tollway.streaming.TextDeltaRuns): the Anthropic and Responses event
writers turn them into events from their bytes, and must say exactly what parsing every
chunk says, however the stream is cut into reads and whatever it mixes in."""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.responses.spec import event_errors
from tollway.messages import EventWriter, sse
from tollway.metering import Usage
from tollway.responses.events import ResponseEventWriter
from tollway.responses.output import usage_doc
from tollway.responses.request import ResponsesRequest
from tollway.streaming import TextDeltaRuns, plain_text_delta

_HEAD = b'data: {"id":"gen-1-abc","object":"chat.completion.chunk","created":%d,"model":"a/b","provider":"p",'


def chunk(delta: bytes, *, created: int = 1700000000, finish: bytes = b"null") -> bytes:
    return _HEAD % created + b'"choices":[{"index":0,"delta":' + delta + b',"finish_reason":' + finish + b"}]}\n\n"


def text(value: str, **kwargs: int) -> bytes:
    return chunk(b'{"content":' + orjson.dumps(value) + b"}", **kwargs)


WORDS = [" alpha", ' "quoted"', " back\\slash", " üñí", " 🎉", "", " new\nline", " tab\t"]

STREAMS: dict[str, list[bytes]] = {
    "plain": [chunk(b'{"role":"assistant","content":""}'), *(text(w) for w in WORDS * 8),
              chunk(b"{}", finish=b'"stop"')],
    "created changes mid-stream": [chunk(b'{"role":"assistant","content":"a"}'), *(text(w) for w in WORDS),
                                   *(text(w, created=1700000001) for w in WORDS), chunk(b"{}", finish=b'"stop"')],
    "a malformed text is skipped": [chunk(b'{"role":"assistant","content":"a"}'), text(" one"), text(" two"),
                                    chunk(b'{"content":"bad \\x escape"}'), text(" three"),
                                    chunk(b"{}", finish=b'"stop"')],
    "reasoning, text, a tool call": [
        chunk(b'{"role":"assistant","reasoning":"think"}'), chunk(b'{"reasoning":" more"}'),
        *(text(w) for w in WORDS), chunk(b'{"tool_calls":[{"index":0,"id":"c1","type":"function",'
                                         b'"function":{"name":"f","arguments":""}}]}'),
        chunk(b'{"tool_calls":[{"index":0,"function":{"arguments":"{\\"x\\":1}"}}]}'),
        text(" after the call"), text(" and more"), chunk(b"{}", finish=b'"tool_calls"')],
    "escapes orjson does not write, a newline": [
        chunk(b'{"role":"assistant","content":"a"}'), text(" one"), chunk(b'{"content":"caf\\u00e9"}'),
        text(" two"), chunk(b'{"content":"a\\/b"}'), text(" three"), text(" four"),
        chunk(b'{"content":"x"}').replace(b"}]}", b"}]}\n: a comment"), text(" five"),
        chunk(b"{}", finish=b'"stop"')],
    "the last text finishes": [chunk(b'{"role":"assistant","content":"a"}'), *(text(w) for w in WORDS),
                               chunk(b'{"content":" end"}', finish=b'"stop"')],
    "text with extra fields": [chunk(b'{"role":"assistant","content":"a"}'),
                               *(text(w) for w in WORDS[:3]),
                               chunk(b'{"content":"x","refusal":null}'), *(text(w) for w in WORDS[3:]),
                               chunk(b"{}", finish=b'"length"')],
}


class _NeverLearns(TextDeltaRuns):
    """The parsing path only: what the runs must reproduce."""

    def learn(self, event: bytes, start: int, end: int) -> None:
        return None


def _reads(events: list[bytes], seed: int) -> list[bytes]:
    """The stream cut into reads at random event boundaries (the adapter yields whole events)."""
    rng = random.Random(seed)
    reads, current = [], b""
    for event in events:
        current += event
        if rng.random() < 0.3:
            reads.append(current)
            current = b""
    return [*reads, current] if current else reads


def _anthropic(parse_only: bool) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    writer = EventWriter("gen-1", "a/b")
    if parse_only:
        writer.runs = _NeverLearns()
    return writer.feed, lambda: writer.end(Usage(prompt_tokens=10, completion_tokens=5), None)


def _responses(parse_only: bool) -> tuple[Callable[[bytes], bytes], Callable[[], bytes]]:
    request = ResponsesRequest.parse({"model": "a/b", "input": "hi", "tools": [
        {"type": "function", "name": "f", "parameters": {"type": "object", "properties": {}}}]})
    writer = ResponseEventWriter(request, "resp_1", "a/b", "p", 1700000000)
    if parse_only:
        writer.runs = _NeverLearns()
    return writer.feed, lambda: writer.end(usage_doc(Usage(prompt_tokens=10, completion_tokens=5), 7), None)


def _normalised(data: bytes) -> bytes:
    """Item ids are random; everything else must be identical."""
    return re.sub(rb"(msg|rs|fc)_[0-9a-f]{24}", rb"\1_ID", re.sub(rb'"completed_at":\d+', b"", data))


def _run(make: Callable[[bool], tuple[Callable[[bytes], bytes], Callable[[], bytes]]], reads: list[bytes],
         parse_only: bool) -> bytes:
    feed, end = make(parse_only)
    return b"".join(feed(r) for r in reads) + end()


@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize("writer", ["anthropic", "responses"])
def test_runs_say_what_parsing_every_chunk_says(name: str, writer: str) -> None:
    make = _anthropic if writer == "anthropic" else _responses
    events = STREAMS[name]
    expected = _normalised(_run(make, [b"".join(events)], parse_only=True))
    for seed in range(12):
        reads = [b"".join(events)] if seed == 0 else [e for e in events] if seed == 1 else _reads(events, seed)
        assert _normalised(_run(make, reads, parse_only=False)) == expected, (name, seed)


def test_a_run_is_taken_without_parsing_each_chunk_and_its_events_are_valid() -> None:
    events = STREAMS["plain"]
    feed, end = _responses(False)
    data = b"".join(feed(r) for r in _reads(events, 3)) + end()
    parsed = [orjson.loads(block.split(b"\ndata: ", 1)[1]) for block in data.split(b"\n\n") if block]
    assert [e["sequence_number"] for e in parsed] == list(range(len(parsed)))
    deltas = [e["delta"] for e in parsed if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "".join(WORDS * 8)
    assert "" not in deltas  # an empty delta says nothing
    for event in parsed:
        assert event_errors(event) == [], event["type"]


def test_only_a_plain_text_delta_is_learnt() -> None:
    assert plain_text_delta(text(" x").rstrip(b"\n")) is not None
    for other in (chunk(b'{"role":"assistant","content":"x"}'), chunk(b'{"content":"x"}', finish=b'"stop"'),
                  chunk(b'{"content":"x","refusal":null}'), chunk(b'{"reasoning":"x"}')):
        assert plain_text_delta(other.rstrip(b"\n")) is None
    two_choices = (_HEAD % 1 + b'"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null},'
                   b'{"index":1,"delta":{"content":"b"},"finish_reason":null}]}')
    assert plain_text_delta(two_choices) is None
    runs = TextDeltaRuns()
    event = text(' a "b"').rstrip(b"\n")
    span = plain_text_delta(event)
    assert span is not None
    runs.learn(event, *span)
    later = [text(" c").rstrip(b"\n"), text(' "d" \\ e').rstrip(b"\n"), text(" f", created=2).rstrip(b"\n")]
    assert runs.run(later, 0) == (2, [b'" c"', b'" \\"d\\" \\\\ e"'])


def test_a_buffer_s_run_is_taken_whole_and_ends_before_any_other_event() -> None:
    runs = TextDeltaRuns()
    event = text(" a").rstrip(b"\n")
    span = plain_text_delta(event)
    assert span is not None
    runs.learn(event, *span)
    run = [text(" b"), text(' "c" \\ d'), text("")]
    after = [chunk(b'{"content":"x"}', finish=b'"stop"'), text(" e")]
    data = b"".join(run + after)
    assert runs.starts(data, 0)
    assert runs.take(data, 0) == (len(b"".join(run)), [b'" b"', b'" \\"c\\" \\\\ d"', b'""'], [" b", ' "c" \\ d', ""])
    # From an offset, and up to a block that is not a learnt delta (a comment line inside it).
    inner = chunk(b'{"content":"y"}').replace(b"}]}", b"}]}\n: note")
    data = b": ping\n\n" + run[0] + inner + run[1]
    assert runs.take(data, 8) == (8 + len(run[0]), [b'" b"'], [" b"])
    # Texts not spelt as orjson spells them (an escape it does not write): declined, the caller parses.
    assert runs.take(b"".join([text(" b"), chunk(b'{"content":"caf\\u00e9"}')]), 0) is None
    # A text delta that finishes begins like the learnt ones but is not one of them.
    assert runs.starts(after[0], 0) and runs.take(after[0], 0) is None
    assert TextDeltaRuns().take(data, 0) is None


def test_a_read_of_one_learnt_delta_is_taken_alone_and_anything_else_declined() -> None:
    runs = TextDeltaRuns()
    event = text(" a").rstrip(b"\n")
    span = plain_text_delta(event)
    assert span is not None
    assert runs.single(text(" b")) is None  # nothing learnt yet
    runs.learn(event, *span)
    assert runs.single(text(' "c" \\ d')) == (b'" \\"c\\" \\\\ d"', ' "c" \\ d')
    assert runs.single(text("")) == (b'""', "")
    for other in (
        text(" b") + text(" c"),  # two deltas in one read: take() reads them
        text(" b").rstrip(b"\n"),  # not a whole event
        b": ping\n\n" + text(" b"),  # a comment first
        chunk(b'{"content":"caf\\u00e9"}'),  # an escape orjson does not write
        chunk(b'{"content": "b"}'),  # spelt otherwise
        chunk(b'{"content":"b"}', finish=b'"stop"'),  # finishes
        text(" b", created=2),  # another spelling: learnt by the parsing path
        chunk(b'{"content":"b\x01"}'),  # a raw control character: not JSON
        chunk(b'{"content":7}'),  # not a string
    ):
        assert runs.single(other) is None, other


# Texts as a model might stream them, and chunks that are not plain text deltas mixed in.
_TEXTS = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_OTHER = st.sampled_from([
    chunk(b'{"content":"caf\\u00e9"}'), chunk(b'{"content":"x","refusal":null}'), chunk(b'{"reasoning":"r"}'),
    chunk(b'{"content":"bad \\x escape"}'), b": keep-alive\n\n", text(" late", created=1700000009)])


@settings(max_examples=200, deadline=None)
@given(first=_TEXTS, parts=st.lists(st.one_of(_TEXTS.map(text), _OTHER), max_size=30),
       cuts=st.lists(st.booleans(), min_size=32, max_size=32), writer=st.sampled_from(["anthropic", "responses"]))
def test_any_stream_cut_any_way_says_what_parsing_every_chunk_says(first: str, parts: list[bytes], cuts: list[bool],
                                                                   writer: str) -> None:
    events = [chunk(b'{"role":"assistant","content":' + orjson.dumps(first) + b"}"), *parts,
              chunk(b"{}", finish=b'"stop"')]
    reads, current = [], b""
    for event, cut in zip(events, cuts + [True] * len(events), strict=False):
        current += event
        if cut:
            reads.append(current)
            current = b""
    make = _anthropic if writer == "anthropic" else _responses
    expected = _normalised(_run(make, [b"".join(events)], parse_only=True))
    assert _normalised(_run(make, [*reads, current] if current else reads, parse_only=False)) == expected


@pytest.mark.parametrize(("message_id", "model"), [("gen-1", "a/b"), ('gen-"1\\', "vendor/módel 🎉")])
def test_the_anthropic_streams_fixed_events_are_what_sse_writes(message_id: str, model: str) -> None:
    # The opening, block and closing events come from byte templates; they must say exactly
    # what serialising each event would (Anthropic's SDKs parse every one).
    writer = EventWriter(message_id, model)
    out = writer.feed(b"".join([chunk(b'{"role":"assistant","content":"hi"}'), text(" there"),
                                chunk(b'{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{}"}}]}'),
                                chunk(b"{}", finish=b'"tool_calls"')]))
    out += writer.end(Usage(prompt_tokens=10, completion_tokens=5), None)
    message = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}
    expected = [
        sse("message_start", {"type": "message_start", "message": message}),
        sse("ping", {"type": "ping"}),
        sse("content_block_start", {"type": "content_block_start", "index": 0,
                                    "content_block": {"type": "text", "text": ""}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "text_delta", "text": "hi"}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                    "delta": {"type": "text_delta", "text": " there"}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "c1", "name": "f", "input": {}}}),
        sse("content_block_delta", {"type": "content_block_delta", "index": 1,
                                    "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        sse("content_block_stop", {"type": "content_block_stop", "index": 1}),
        sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                              "usage": {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0,
                                        "cache_read_input_tokens": 0}}),
        sse("message_stop", {"type": "message_stop"}),
    ]
    assert out == b"".join(expected)
