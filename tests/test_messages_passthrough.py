"""The reading of a /v1/messages body for the pass-through (``MessagesRequest.parse_passthrough``:
the conversation kept as raw JSON) says what the ordinary parse says, or declines, or leaves
a flaw in the conversation to the upstream and says it when tollway has to read it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.test_messages import FLAWS, GOOD_BODY, JSON_VALUE
from tollway.errors import BadRequest
from tollway.json_body import encode_body
from tollway.messages import MessagesRequest

FIXTURES = Path(__file__).parent / "fixtures" / "agents"

# Later turns of a conversation: the raw reading is for conversations longer than what routing
# reads (see worth_reading_raw); a short one is read the ordinary way.
TAIL = [{"role": "user" if i % 2 == 0 else "assistant", "content": [{"type": "text", "text": f"turn {i} " * 300}]}
        for i in range(6)]
_TAIL_JSON = orjson.dumps(TAIL)[1:-1]


def _same_request(fast: MessagesRequest, slow: MessagesRequest) -> None:
    assert orjson.loads(encode_body(fast.anthropic)) == slow.anthropic  # what the upstream gets
    assert fast.route == slow.route
    assert fast.openai == slow.openai
    assert fast.stream == slow.stream
    assert fast.translation_notes == slow.translation_notes


@settings(max_examples=500, deadline=None)
@given(body=GOOD_BODY, flaw=st.one_of(st.none(), st.sampled_from(FLAWS)), where=st.integers(0, 99),
       value=JSON_VALUE)
def test_passthrough_reading_agrees_with_the_ordinary_parse(body: dict[str, Any], flaw: Any, where: int,
                                                            value: Any) -> None:
    """A valid body, or one with one flaw put into it: both readings agree, or the raw reading
    declines, or it leaves a flaw in the conversation to the upstream and says it when needed."""
    body["messages"] = [*body["messages"], *copy.deepcopy(TAIL)]  # long enough to be read raw
    if flaw is not None:
        flaw(body, where, value)
        event(f"flaw: {flaw.__name__}")
    raw = orjson.dumps(body)
    fast = MessagesRequest.parse_passthrough(raw)
    try:
        slow: MessagesRequest | None = MessagesRequest.parse(orjson.loads(raw))
    except BadRequest as exc:
        slow, error = None, exc.message
    if fast is None:
        event("declined")
        return
    if slow is not None:
        event("read raw, same request")
        _same_request(fast, slow)
        return
    # Only a flaw in the conversation past what the routing view reads is left unchecked
    # (the upstream checks it); tollway says the same 400 the moment it needs the messages.
    event("read raw, flaw left to the upstream")
    assert error.startswith("messages["), error
    with pytest.raises(BadRequest) as caught:
        fast.openai  # noqa: B018
    assert caught.value.message == error
    estimate = fast.estimate_body()  # a cut stream is still billed by the conversation's size
    assert estimate["messages"][0]["content"] == orjson.dumps(body["messages"]).decode()


def test_a_short_conversation_is_read_the_ordinary_way() -> None:
    one = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x" * 1000}]}
    assert MessagesRequest.parse_passthrough(orjson.dumps(one)) is None
    assert MessagesRequest.parse_passthrough(orjson.dumps({**one, "messages": one["messages"] + TAIL})) \
        is not None


def _agent_body(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())["body"]
    return body


def test_claude_code_requests_are_read_raw() -> None:
    """What the real client sends (captured from Claude Code 2.1.328), with a tool loop added:
    the optimisation must apply to it, not only to the benchmark's text conversation."""
    body = _agent_body("claude_code_2.1.328_request.json")
    body["messages"] += [
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Read it.", "signature": "sig=="},
            {"type": "text", "text": "Reading."},
            {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/tmp/a.py"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "print(1)"}],
             "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}]},
        *TAIL]
    raw = orjson.dumps(body)
    fast = MessagesRequest.parse_passthrough(raw)
    assert fast is not None
    _same_request(fast, MessagesRequest.parse(orjson.loads(raw)))


def test_bad_utf8_unknown_fields_and_fallback_models_are_left_to_the_ordinary_parse() -> None:
    good = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]},' \
        + _TAIL_JSON + b"]}"
    assert MessagesRequest.parse_passthrough(good) is not None
    # msgspec skips the text without checking its UTF-8; orjson refuses it (a 400).
    assert MessagesRequest.parse_passthrough(good.replace(b'"hi"', b'"h\xed\xa0\x80i"')) is None
    assert MessagesRequest.parse_passthrough(good.replace(b'"hi"', '"h\u00e9"'.encode())) is not None
    # A top-level field _Body does not name would be dropped by re-encoding: declined instead.
    assert MessagesRequest.parse_passthrough(good.replace(b'"max_tokens":5', b'"max_tokens":5,"x":1')) is None
    # Inside a message anything goes through as sent (the upstream's to judge).
    inner = MessagesRequest.parse_passthrough(good.replace(b'"text":"hi"', b'"text":"hi","x":1'))
    assert inner is not None
    assert orjson.loads(encode_body(inner.anthropic))["messages"][0]["content"][0]["x"] == 1
    # Fallback models may be translated, which needs the whole conversation checked.
    assert MessagesRequest.parse_passthrough(good.replace(b'"max_tokens":5', b'"max_tokens":5,"models":["a"]')) \
        is None
    # An integer past 64 bits: msgspec reads it, orjson cannot write it (the ordinary parse
    # reads it as a float); inside the conversation it goes as sent.
    assert MessagesRequest.parse_passthrough(good.replace(b'"max_tokens":5', b'"max_tokens":5,"top_k":'
                                                          b'18446744073709551616')) is None
    big = MessagesRequest.parse_passthrough(good.replace(b'"text":"hi"', b'"text":"hi","n":18446744073709551616'))
    assert big is not None and b"18446744073709551616" in encode_body(big.anthropic)
    # Not JSON, or JSON that is not an object: the ordinary parse says what is wrong.
    for bad in (b"", b"[]", b"{", good + b"x", b'{"model":"m","max_tokens":5,"messages":[{"role":"user"},]}'):
        assert MessagesRequest.parse_passthrough(bad) is None


def test_a_duplicate_model_key_reaches_the_upstream_once() -> None:
    """The upstream never sees two "model" keys, so it cannot serve one model while tollway
    bills another: the body is re-encoded from what was read (the last key wins, as in orjson)."""
    raw = b'{"model":"a/first","max_tokens":5,"messages":[{"role":"user","content":"hi"},' + _TAIL_JSON \
        + b'],"model":"b/last"}'
    fast = MessagesRequest.parse_passthrough(raw)
    assert fast is not None
    assert fast.route["model"] == "b/last"
    sent = encode_body({**fast.anthropic, "model": "upstream-name"})
    assert sent.count(b'"model"') == 1
    assert orjson.loads(sent)["messages"] == [{"role": "user", "content": "hi"}, *TAIL]
