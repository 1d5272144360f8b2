"""Items read raw for a Responses-native upstream (tollway.responses.passthrough) against the
ordinary read: it declines; or it reads the same request (routing view, chat translation,
upstream body, flags); or it leaves a flaw past what routing reads to the upstream, and says
the ordinary read's 400 the moment tollway needs the items."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tollway.errors import BadRequest
from tollway.responses import passthrough
from tollway.responses.native import native_body
from tollway.responses.request import ResponsesRequest, encode_reasoning

FIXTURES = Path(__file__).parents[1] / "fixtures" / "agents"
TARGET: Any = SimpleNamespace(endpoint=SimpleNamespace(model="gpt-up"))

_INT = st.integers(-(2**63), 2**63 - 1)
_TEXT = st.text(alphabet="ab é\"\\\n", max_size=6)
_TEXT_PART = st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text", "text"]), "text": _TEXT})
_PART = st.one_of(
    _TEXT_PART,
    st.fixed_dictionaries({"type": st.just("output_text"), "text": _TEXT},
                          optional={"annotations": st.just([]), "logprobs": st.just([])}),
    st.fixed_dictionaries({"type": st.sampled_from(["refusal", "input_file", "summary_text"]), "text": _TEXT}),
    st.fixed_dictionaries({"type": st.just("input_text"),
                           "text": st.one_of(st.none(), _INT, st.just(["a"]), st.just({"a": "b"}))}),
    st.just({"type": "input_text", "text": "a", "extra": 1}),
    st.just({"text": "no type"}),
    st.just({"type": "input_image", "image_url": "https://example.com/a.png"}),
    st.just("not a part"))
_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "developer"]),
     "content": st.one_of(_TEXT, st.lists(_TEXT_PART, max_size=2))},
    optional={"type": st.just("message"), "id": st.just("msg_1"), "status": st.just("completed")})
_OUTPUT = st.one_of(_TEXT, st.lists(_TEXT_PART, max_size=2), st.just({"a": 1}), _INT, st.none())
_ENCRYPTED = st.sampled_from(["gAAAAB-opaque", encode_reasoning("anthropic", [{"type": "thinking", "text": "t"}]),
                              "tw1.not-base64!", None])
_ITEM = st.one_of(
    _MESSAGE,
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer", "robot", 5]),
         "content": st.one_of(_TEXT, st.lists(_PART, max_size=3), st.none(), _INT)},
        optional={"type": st.sampled_from(["message", "reasoning", 7]), "id": st.sampled_from(["msg_1", 1])}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": st.sampled_from(["c1", 1]),
                           "name": st.sampled_from(["f", None])},
                          optional={"arguments": st.one_of(_TEXT, st.just({"x": 1})), "id": st.just("fc_1"),
                                    "status": st.just("completed"), "namespace": st.just("ns")}),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": st.sampled_from(["c1", None])},
                          optional={"output": _OUTPUT, "id": st.just("fco_1")}),
    st.fixed_dictionaries({"type": st.just("custom_tool_call"), "call_id": st.just("c2"), "name": st.just("patch")},
                          optional={"input": st.one_of(_TEXT, _INT)}),
    st.fixed_dictionaries({"type": st.just("custom_tool_call_output"), "call_id": st.just("c2")},
                          optional={"output": _OUTPUT}),
    st.fixed_dictionaries({"type": st.just("reasoning")},
                          optional={"id": st.just("rs_1"), "encrypted_content": _ENCRYPTED,
                                    "summary": st.lists(st.fixed_dictionaries(
                                        {"type": st.just("summary_text"), "text": _TEXT}), max_size=2)}),
    st.just({"type": "item_reference", "id": "msg_1"}),
    st.just({"type": "web_search_call", "id": "ws_1", "status": "completed"}),
    st.just(["not", "an", "item"]))
# What agents send: messages, tool calls and their outputs, reasoning.
_AGENT_ITEM = st.one_of(
    _MESSAGE,
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": st.just("c1"), "name": st.just("f"),
                           "arguments": _TEXT}, optional={"id": st.just("fc_1"), "status": st.just("completed")}),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": st.just("c1"), "output": _OUTPUT}),
    st.fixed_dictionaries({"type": st.just("reasoning"), "summary": st.just([])},
                          optional={"id": st.just("rs_1"), "encrypted_content": st.just("gAAAAB-opaque")}))
_AGENT_TOP_LEVEL = {
    "instructions": _TEXT, "stream": st.booleans(), "store": st.booleans(), "max_output_tokens": st.just(64),
    "tools": st.just([{"type": "function", "name": "f", "parameters": {"type": "object"}}, {"type": "web_search"}]),
    "tool_choice": st.just("auto"), "parallel_tool_calls": st.booleans(), "include": st.just([]),
    "reasoning": st.just({"effort": "medium"}), "prompt_cache_key": st.just("session-1"),
    "client_metadata": st.just({"turn_id": "t1"}), "previous_response_id": st.none(),
}
_TOP_LEVEL = {
    "instructions": st.one_of(_TEXT, _INT),
    "stream": st.sampled_from([True, False, None, "yes"]),
    "store": st.sampled_from([True, False, None, "no"]),
    "max_output_tokens": st.sampled_from([64, 0, True, "64", None]),
    "temperature": st.sampled_from([0.5, 1]),
    "tools": st.sampled_from([[{"type": "function", "name": "f", "parameters": {"type": "object"}}],
                              [{"type": "web_search"}], [{"type": "function"}], "tools"]),
    "tool_choice": st.sampled_from(["auto", {"type": "web_search"}, {"type": "function", "name": "f"}]),
    "parallel_tool_calls": st.sampled_from([True, "yes"]),
    "reasoning": st.sampled_from([{"effort": "low", "summary": "auto"}, {"effort": "none"}, "high"]),
    "text": st.sampled_from([{"format": {"type": "json_schema", "name": "x"}},
                             {"format": {"type": "json_schema", "schema": {"type": "object"}}}]),
    "include": st.just(["reasoning.encrypted_content"]),
    "prompt_cache_key": st.just("session-1"),
    "user": st.sampled_from(["u1", ""]),
    "background": st.booleans(),
    "previous_response_id": st.sampled_from([None, "resp_1"]),
    "client_metadata": st.just({"turn_id": "t1"}),
    "provider": st.just({"order": ["stub-native"]}),
    "models": st.just(["a/c"]),
    "unknown_option": st.just(1),
}


def _slow(raw: bytes, default_store: bool = False) -> ResponsesRequest | None:
    try:
        return ResponsesRequest.parse(orjson.loads(raw), default_store=default_store)
    except BadRequest:
        return None


def _slow_error(raw: bytes) -> str:
    with pytest.raises(BadRequest) as caught:
        ResponsesRequest.parse(orjson.loads(raw), default_store=False)
    return caught.value.message


def _assert_same(raw_read: ResponsesRequest, slow: ResponsesRequest) -> None:
    # The ordinary read's view of a conversation with other items than plain messages is the
    # whole translation; the raw read's has the first two messages, all routing reads.
    assert raw_read.route == {**slow.route, "messages": slow.route["messages"][:2]}
    for stream in (True, False):  # before the items are decoded: the JSON they came as
        assert orjson.loads(native_body(raw_read, TARGET, stream)) == orjson.loads(native_body(slow, TARGET, stream))
    assert raw_read.chat == slow.chat and raw_read.reasoning == slow.reasoning
    assert raw_read.chat_for("anthropic") == slow.chat_for("anthropic")
    assert raw_read.items == slow.items
    assert (raw_read.stream, raw_read.store, raw_read.include_encrypted, raw_read.own_items, raw_read.chain) == \
        (slow.stream, slow.store, slow.include_encrypted, slow.own_items, slow.chain)
    assert (raw_read.tools, raw_read.dropped_tools, raw_read.forced_builtin) == \
        (slow.tools, slow.dropped_tools, slow.forced_builtin)


@settings(max_examples=600, deadline=None)
@given(items=st.one_of(st.lists(_MESSAGE, min_size=1, max_size=5), st.lists(_AGENT_ITEM, max_size=6),
                       st.lists(_ITEM, max_size=6), _TEXT),
       extra=st.one_of(st.fixed_dictionaries({}, optional=_AGENT_TOP_LEVEL),
                       st.fixed_dictionaries({}, optional=_TOP_LEVEL)))
def test_the_raw_read_declines_or_reads_what_the_ordinary_read_reads(items: Any, extra: dict[str, Any]) -> None:
    body = {"model": "a/b", "input": items, **extra}
    raw = orjson.dumps(_later(body) if isinstance(items, list) and items else body)  # long enough to read raw
    raw_read = passthrough.read(raw, default_store=False)
    if raw_read is None:
        event("declined")
        return
    slow = _slow(raw)
    if slow is not None:
        event("read raw, same request")
        _assert_same(raw_read, slow)
        return
    # Only a flaw in the items past what the routing view reads is left unchecked (the
    # upstream checks it); tollway says the ordinary read's 400 when it needs the items.
    event("read raw, flaw left to the upstream")
    error = _slow_error(raw)
    assert error.startswith(("input[", "'input' has no message")), error
    with pytest.raises(BadRequest) as caught:
        raw_read.chat  # noqa: B018
    assert caught.value.message == error
    estimate = raw_read.estimate_body()  # a cut stream is still billed by the items' size
    assert estimate["messages"][0]["content"] == orjson.dumps(orjson.loads(raw)["input"]).decode()


def _later(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` some turns later: the raw read is for conversations longer than what routing
    reads (a short one is read the ordinary way)."""
    turns = [{"type": "message", "role": "user" if i % 2 == 0 else "assistant",
              "content": [{"type": "input_text" if i % 2 == 0 else "output_text", "text": f"turn {i} " * 1000}]}
             for i in range(6)]
    return {**body, "input": [*body["input"], *turns]}


def test_a_short_conversation_is_read_the_ordinary_way() -> None:
    one = {"model": "a/b", "store": False, "input": [{"role": "user", "content": "x" * 1000}]}
    assert passthrough.read(orjson.dumps(one), default_store=False) is None
    assert passthrough.read(orjson.dumps(_later(one)), default_store=False) is not None


def _bench_body(turns: int = 6) -> dict[str, Any]:
    return {"model": "a/b", "stream": True, "max_output_tokens": 64, "store": False, "instructions": "Be terse.",
            "input": [{"type": "message", "role": "user" if i % 2 == 0 else "assistant",
                       "content": [{"type": "input_text" if i % 2 == 0 else "output_text", "text": f"{i}: fox"}]}
                      for i in range(turns)]}


def _tool_turn() -> dict[str, Any]:
    """A Codex turn after a tool call: reasoning, the call, its output, an assistant message."""
    return {"model": "a/b", "stream": True, "store": False, "include": ["reasoning.encrypted_content"],
            "tools": [{"type": "function", "name": "exec_command", "parameters": {"type": "object"}}],
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List files."}]},
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Listing."}],
                 "encrypted_content": "gAAAAB-opaque", "content": None},
                {"type": "function_call", "id": "fc_1", "name": "exec_command", "call_id": "call_1",
                 "arguments": "{\"cmd\":\"ls\"}", "status": "completed"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt\nb.txt"},
                {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "phase": "final_answer",
                 "content": [{"type": "output_text", "text": "Two files.", "annotations": [], "logprobs": []}]},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Thanks."}]}]}


@pytest.mark.parametrize("body", [
    _bench_body(),
    _tool_turn(),
    _later(json.loads((FIXTURES / "codex_0.169.0_request.json").read_text())["body"]),
], ids=["bench", "codex-tool-turn", "codex-0.169-fixture-later-in-its-session"])
def test_agent_bodies_are_read_raw(body: dict[str, Any]) -> None:
    raw = orjson.dumps(body)
    raw_read = passthrough.read(raw, default_store=False)
    assert raw_read is not None and raw_read.items_raw is not None
    assert orjson.loads(raw_read.items_raw.json()) == body["input"]
    slow = _slow(raw)
    assert slow is not None
    _assert_same(raw_read, slow)


def _with(**changes: Any) -> bytes:
    return orjson.dumps({**_bench_body(), **changes})


# Items past the first two messages (which the routing view translates, and checks).
_LATER_ITEMS = {
    "message-without-type": {"role": "user", "content": "hi"},  # the Agents SDK's; valid
    "text-not-a-string": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": 5}]},
    "message-without-role": {"type": "message", "content": "no role"},
    "message-of-null": {"role": "user", "content": None},
    "call-without-name": {"type": "function_call", "call_id": "c1", "arguments": "{}"},
    "output-without-call-id": {"type": "function_call_output", "output": "x"},
    "item-reference": {"type": "item_reference", "id": "msg_1"},
    "not-an-object": ["not", "an", "item"],
}


@pytest.mark.parametrize("conversation", ["messages", "tool-turn"])
@pytest.mark.parametrize("later", list(_LATER_ITEMS))
def test_items_past_the_routing_view_go_as_sent(conversation: str, later: str) -> None:
    """Forwarded as sent (the upstream judges them); if tollway needs them as chat (a local
    estimate), it says the ordinary read's 400, or reads the same request."""
    body = _bench_body() if conversation == "messages" else _tool_turn()
    raw = orjson.dumps({**body, "input": [*body["input"], _LATER_ITEMS[later]]})
    raw_read = passthrough.read(raw, default_store=False)
    assert raw_read is not None
    assert orjson.loads(native_body(raw_read, TARGET, True))["input"][-1] == _LATER_ITEMS[later]
    slow = _slow(raw)
    if slow is not None:
        _assert_same(raw_read, slow)
    else:
        with pytest.raises(BadRequest) as caught:
            raw_read.chat  # noqa: B018
        assert caught.value.message == _slow_error(raw)


@pytest.mark.parametrize("raw", [
    _with(input=[]),
    _with(input="a string"),
    _with(input=[{"type": "message", "role": "robot", "content": "x"}]),
    _with(models=["a/c"]),
    _with(previous_response_id="resp_1"),
    _with(store=True),
    _with(max_output_tokens=0),
    _with(surprise=True),
    _with(metadata={"n": 1}).replace(b'"n":1', b'"n":18446744073709551616'),
    _with(input=[*_bench_body()["input"], {"type": "reasoning", "encrypted_content": encode_reasoning("p", [])}]),
    _with().replace(b"0: fox", b"0: f\xffx"),  # bad UTF-8 inside a text
    _with()[:-1] + b",}",
], ids=["no-items", "string-input", "bad-role-in-view",
        "fallback-models", "previous-response", "stored", "bad-max-output", "unknown-field", "integer-past-64-bits",
        "tollway-reasoning", "bad-utf8", "malformed"])
def test_the_raw_read_declines(raw: bytes) -> None:
    assert passthrough.read(raw, default_store=False) is None


def test_tollway_reasoning_is_found_whatever_the_key_order() -> None:
    ours = encode_reasoning("anthropic", [{"type": "thinking", "thinking": "t", "signature": "s"}])
    later = {"encrypted_content": ours, "summary": [], "type": "reasoning"}  # "type" not first
    assert passthrough.read(_with(input=[*_bench_body()["input"], later]), default_store=False) is None
    # The same text inside a message is no reasoning: it goes as sent.
    text = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f'"{ours}"'}]}
    raw_read = passthrough.read(_with(input=[*_bench_body()["input"], text]), default_store=False)
    assert raw_read is not None
    assert orjson.loads(native_body(raw_read, TARGET, True))["input"][-1] == text


def test_store_by_default_is_read_the_ordinary_way() -> None:
    """Stored items are kept as objects in the ledger database."""
    raw = orjson.dumps({k: v for k, v in _bench_body().items() if k != "store"})
    assert passthrough.read(raw, default_store=True) is None
    assert passthrough.read(raw, default_store=False) is not None


def test_a_duplicate_model_reaches_the_upstream_once() -> None:
    """The last "model" is the one routed and billed, and the only one the upstream sees."""
    raw = _with()[:-1] + b',"model":"c/d"}'
    raw_read = passthrough.read(raw, default_store=False)
    assert raw_read is not None and raw_read.route["model"] == "c/d"
    assert native_body(raw_read, TARGET, True).count(b'"model"') == 1


def test_an_integer_past_64_bits_in_an_item_goes_as_sent() -> None:
    body = _tool_turn()
    raw = orjson.dumps(body).replace(b'"output":"a.txt\\nb.txt"', b'"output":18446744073709551616')
    raw_read = passthrough.read(raw, default_store=False)
    assert raw_read is not None
    assert b'"output":18446744073709551616' in native_body(raw_read, TARGET, True)
