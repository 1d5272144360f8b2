"""The one-pass reading of a /v1/messages body for the pass-through
(``MessagesRequest.parse_passthrough``) says what the ordinary parse says, or declines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tollway.errors import BadRequest
from tollway.messages import MessagesRequest

FIXTURES = Path(__file__).parent / "fixtures" / "agents"

_TEXT = st.text(max_size=12)
_INT = st.integers(min_value=-(2**53), max_value=2**53)
_JSON = st.recursive(st.none() | st.booleans() | _INT | _TEXT,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                     max_leaves=6)
# Bodies the one-pass reading should take: every block typed, no unknown field.
_GOOD_BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _TEXT},
                          optional={"cache_control": st.just({"type": "ephemeral"})}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": _TEXT, "name": _TEXT, "input": _JSON}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": _TEXT},
                          optional={"content": st.one_of(_TEXT, st.lists(st.fixed_dictionaries(
                              {"type": st.just("text"), "text": _TEXT}), max_size=2)),
                                    "is_error": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": _TEXT, "signature": _TEXT}),
    st.fixed_dictionaries({"type": st.just("image"), "source": st.fixed_dictionaries(
        {"type": st.just("base64"), "media_type": st.just("image/png"), "data": _TEXT})}))
_GOOD_BODY = st.fixed_dictionaries(
    {"model": st.just("test/claude"), "max_tokens": st.integers(min_value=1, max_value=9),
     "messages": st.lists(st.fixed_dictionaries(
         {"role": st.sampled_from(["user", "assistant", "system"]),
          "content": st.one_of(_TEXT, st.lists(_GOOD_BLOCK, max_size=3))}), min_size=1, max_size=5)},
    optional={"system": st.one_of(_TEXT, st.lists(_GOOD_BLOCK, max_size=2)), "stream": st.booleans(),
              "metadata": st.fixed_dictionaries({"user_id": _TEXT}), "context_management": _JSON})


def _message(body: dict[str, Any], where: int) -> dict[str, Any]:
    message: dict[str, Any] = body["messages"][where % len(body["messages"])]
    return message


def _block(body: dict[str, Any], where: int) -> dict[str, Any]:
    message = _message(body, where)
    if not isinstance(message["content"], list) or not message["content"]:
        message["content"] = [{"type": "text", "text": "x"}]
    block: dict[str, Any] = message["content"][where % len(message["content"])]
    return block


def role(body: dict[str, Any], where: int, value: Any) -> None:
    _message(body, where)["role"] = value if where % 2 else "tool"


def content(body: dict[str, Any], where: int, value: Any) -> None:
    _message(body, where)["content"] = value


def message_field(body: dict[str, Any], where: int, value: Any) -> None:
    _message(body, where)["name"] = value


def block(body: dict[str, Any], where: int, value: Any) -> None:
    message = _message(body, where)
    message["content"] = [*message["content"], value] if isinstance(message["content"], list) else [value]


def block_type(body: dict[str, Any], where: int, value: Any) -> None:
    target = _block(body, where)
    if where % 2:
        target.pop("type")
    else:
        target["type"] = value


def block_field(body: dict[str, Any], where: int, value: Any) -> None:
    _block(body, where)["unknown_field" if where % 2 else "content"] = value


def tool_result(body: dict[str, Any], where: int, value: Any) -> None:
    inner: Any = [{"type": "tool_result", "tool_use_id": "t", "content": value}] if where % 2 else value
    _message(body, where)["content"] = [{"type": "tool_result", "tool_use_id": "t", "content": inner}]


def top_level(body: dict[str, Any], where: int, value: Any) -> None:
    names = ["model", "max_tokens", "messages", "system", "tools", "tool_choice", "thinking", "metadata",
             "output_config", "stop_sequences", "stream", "unknown_top_level"]
    body[names[where % len(names)]] = value


def empty(body: dict[str, Any], where: int, value: Any) -> None:
    body["messages"] = []


_FLAWS = [role, content, message_field, block, block_type, block_field, tool_result, top_level, empty]


def _same_request(fast: MessagesRequest, slow: MessagesRequest) -> None:
    assert orjson.loads(orjson.dumps(fast.anthropic)) == slow.anthropic  # what the upstream gets
    assert fast.route == slow.route
    assert fast.openai == slow.openai
    assert fast.stream == slow.stream
    assert fast.translation_notes == slow.translation_notes


@settings(max_examples=500, deadline=None)
@given(body=_GOOD_BODY, flaw=st.one_of(st.none(), st.sampled_from(_FLAWS)), where=st.integers(0, 99),
       value=_JSON)
def test_passthrough_reading_agrees_with_the_ordinary_parse(body: dict[str, Any], flaw: Any, where: int,
                                                            value: Any) -> None:
    """A valid body, or one with one flaw put into it: both readings agree, or the one-pass
    reading declines."""
    if flaw is not None:
        flaw(body, where, value)
        event(f"flaw: {flaw.__name__}")
    raw = orjson.dumps(body)
    fast = MessagesRequest.parse_passthrough(raw)
    try:
        slow: MessagesRequest | None = MessagesRequest.parse(orjson.loads(raw))
    except BadRequest:
        slow = None
    event("read in one pass" if fast is not None else "declined")
    if fast is None:
        return
    assert slow is not None, "the pass-through reading accepted a body the ordinary parse rejects"
    _same_request(fast, slow)


def _agent_body(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())["body"]
    return body


def test_claude_code_requests_take_the_one_pass_reading() -> None:
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
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}]}]
    raw = orjson.dumps(body)
    fast = MessagesRequest.parse_passthrough(raw)
    assert fast is not None
    _same_request(fast, MessagesRequest.parse(orjson.loads(raw)))


def test_bad_utf8_and_unknown_fields_are_left_to_the_ordinary_parse() -> None:
    good = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}'
    assert MessagesRequest.parse_passthrough(good) is not None
    # msgspec skips the text without checking its UTF-8; orjson refuses it (a 400).
    assert MessagesRequest.parse_passthrough(good.replace(b'"hi"', b'"h\xed\xa0\x80i"')) is None
    assert MessagesRequest.parse_passthrough(good.replace(b'"hi"', '"hé"'.encode())) is not None
    # A field the structs do not name would be dropped by re-encoding: declined instead.
    assert MessagesRequest.parse_passthrough(good.replace(b'"text":"hi"', b'"text":"hi","x":1')) is None
    assert MessagesRequest.parse_passthrough(good.replace(b'"max_tokens":5', b'"max_tokens":5,"x":1')) is None


def test_a_duplicate_model_key_reaches_the_upstream_once() -> None:
    """The upstream never sees two "model" keys, so it cannot serve one model while tollway
    bills another: the body is re-encoded from what was read (the last key wins, as in orjson)."""
    raw = b'{"model":"a/first","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"model":"b/last"}'
    fast = MessagesRequest.parse_passthrough(raw)
    assert fast is not None
    assert fast.route["model"] == "b/last"
    sent = orjson.dumps({**fast.anthropic, "model": "upstream-name"})
    assert sent.count(b'"model"') == 1
    assert orjson.loads(sent)["messages"] == [{"role": "user", "content": "hi"}]
