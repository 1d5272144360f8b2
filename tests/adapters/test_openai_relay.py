"""The OpenAI stream relay's byte-level fast path gives exactly what parsing would."""

from __future__ import annotations

import json

import orjson
import pytest

from tollway.adapters.base import StreamState
from tollway.adapters.openai import _ChunkRelay


class _Ctx:
    generation_id = "gen-1-abc"
    model_id = "author/model"
    translated = False


class _TranslatedCtx(_Ctx):
    translated = True


def _event(obj: dict, spaced: bool) -> bytes:
    text = json.dumps(obj) if spaced else json.dumps(obj, separators=(",", ":"))
    return b"data: " + text.encode() + b"\n\n"


def _stream(spaced: bool, n: int = 40, usage: bool = True) -> list[bytes]:
    base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "up-model"}
    events = [_event({**base, "choices": [{"index": 0, "delta": {"content": f" w{i} \"error\" usage"},
                                           "finish_reason": None}]}, spaced) for i in range(n)]
    events.append(_event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}, spaced))
    if usage:
        events.append(_event({**base, "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": n}},
                             spaced))
    events.append(b"data: [DONE]\n\n")
    return events


def _relay(blocks: list[bytes], ctx: _Ctx | None = None) -> tuple[list[dict], StreamState, _ChunkRelay]:
    state = StreamState()
    relay = _ChunkRelay(ctx or _Ctx(), "prov", state)  # type: ignore[arg-type]
    out = b"".join(relay.process(b) for b in blocks)
    chunks = [orjson.loads(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: ")]
    return chunks, state, relay


@pytest.mark.parametrize("spaced", [False, True])
@pytest.mark.parametrize("split", ["one block", "per event", "odd cuts"])
def test_fast_path_equals_parsing(spaced: bool, split: str) -> None:
    events = _stream(spaced)
    data = b"".join(events)
    if split == "one block":
        blocks = [data]
    elif split == "per event":
        blocks = events
    else:  # upstream reads cut anywhere; the adapter re-frames on blank lines first
        blocks = []
        buffer = b""
        for i in range(0, len(data), 777):
            buffer += data[i:i + 777]
            cut = buffer.rfind(b"\n\n")
            if cut >= 0:
                blocks.append(buffer[:cut + 2])
                buffer = buffer[cut + 2:]
    chunks, state, relay = _relay(blocks)
    assert relay.fast and relay.done and relay.finished
    assert len(chunks) == 41  # 40 content chunks and the finish chunk; usage is re-emitted by the caller
    assert all(c["id"] == "gen-1-abc" and c["model"] == "author/model" and c["provider"] == "prov"
               for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == \
        "".join(f' w{i} "error" usage' for i in range(40))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert state.finish_reason == "stop"
    assert state.usage is not None and state.usage.completion_tokens == 40


def test_stream_without_finish_reason_still_stops_at_done() -> None:
    events = [e for e in _stream(False) if b'"finish_reason":"stop"' not in e]
    chunks, state, relay = _relay([b"".join(events)])
    assert relay.done and not relay.finished
    assert len(chunks) == 40 and state.usage is not None


def test_error_event_mid_stream_is_parsed() -> None:
    # A provider that fails mid-stream sends an error event and stops: it ends the data.
    events = [*_stream(False)[:10], b'data: {"error": {"message": "overloaded", "code": 502}}\n\n']
    state = StreamState()
    relay = _ChunkRelay(_Ctx(), "prov", state)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="overloaded"):
        relay.process(b"".join(events))


def test_long_block_with_special_events_only_at_the_end() -> None:
    # 2,000 content chunks (~200 KB) in one read: the closing events are found in the tail.
    chunks, state, relay = _relay([b"".join(_stream(False, n=2000))])
    assert relay.done and relay.finished and len(chunks) == 2001
    assert state.usage is not None and state.usage.completion_tokens == 2000
    assert all(c["id"] == "gen-1-abc" for c in chunks)


@pytest.mark.parametrize("spaced", [False, True])
@pytest.mark.parametrize("per_event", [False, True])
def test_a_translated_stream_keeps_the_upstream_spelling(spaced: bool, per_event: bool) -> None:
    """For a stream another writer translates (Anthropic or Responses events), every content
    chunk reaches the writer as the upstream spelt it, the parsed ones too (so the writer's byte
    templates fit them all), and metering reads the same finish and usage."""
    events = _stream(spaced)
    chunks, state, relay = _relay(events if per_event else [b"".join(events)], _TranslatedCtx())
    assert relay.done and relay.finished
    assert chunks == [orjson.loads(e[6:]) for e in events[:41]]  # the upstream's own, untouched
    assert state.finish_reason == "stop"
    assert state.usage is not None and state.usage.completion_tokens == 40
