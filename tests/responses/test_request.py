"""The Responses -> chat mapping on its own: input items, tools, validation messages."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tollway.errors import BadRequest
from tollway.responses.events import ResponseEventWriter
from tollway.responses.output import call_item
from tollway.responses.request import ResponsesRequest, decode_reasoning, encode_reasoning


def parse(**body: Any) -> ResponsesRequest:
    return ResponsesRequest.parse({"model": "a/b", **body})


def test_items_become_chat_messages() -> None:
    request = parse(instructions="Rules.", input=[
        {"role": "developer", "content": "Be brief."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{\"x\":1}"},
        {"type": "function_call", "call_id": "c2", "name": "look", "arguments": "{\"x\":2}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "two"}]},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
    ])
    assert request.chat["messages"] == [
        {"role": "system", "content": "Rules."},
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png",
                                                                         "detail": "high"}}]},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}},
            {"id": "c2", "type": "function", "function": {"name": "look", "arguments": "{\"x\":2}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "one"},
        {"role": "tool", "tool_call_id": "c2", "content": "two"},
    ]


@pytest.mark.parametrize(("body", "named"), [
    ({"input": "hi"}, "'model'"),
    ({"model": "a/b"}, "'input'"),
    ({"model": "a/b", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": "a/b", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input[0].content[0]"),
    ({"model": "a/b", "input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
    ({"model": "a/b", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "a/b", "input": "hi", "tools": [{"type": "function"}]}, "tools[0]"),
    ({"model": "a/b", "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "schema"),
])
def test_bad_requests_name_the_field(body: dict[str, Any], named: str) -> None:
    with pytest.raises(BadRequest) as err:
        ResponsesRequest.parse(body)
    assert named in err.value.message


def test_namespace_custom_and_builtin_tools() -> None:
    request = parse(input="hi", tool_choice={"type": "function", "name": "read"}, tools=[
        {"type": "namespace", "name": "fs", "description": "files", "tools": [
            {"type": "function", "name": "read", "parameters": {"type": "object"}, "strict": False}]},
        {"type": "custom", "name": "apply_patch", "description": "patch"},
        {"type": "web_search", "external_web_access": True},
        {"type": "image_generation", "output_format": "png"},
    ])
    assert [t["function"]["name"] for t in request.chat["tools"]] == ["read", "apply_patch"]
    assert request.chat["tools"][1]["function"]["parameters"]["required"] == ["input"]
    assert request.chat["tool_choice"] == {"type": "function", "function": {"name": "read"}}
    assert request.dropped_tools == ("web_search", "image_generation") and request.forced_builtin is None
    assert call_item(request, "fc_1", "c1", "read", "{}")["namespace"] == "fs"
    custom = call_item(request, "fc_2", "c2", "apply_patch", '{"input":"*** Begin Patch"}')
    assert (custom["type"], custom["input"]) == ("custom_tool_call", "*** Begin Patch")
    assert parse(input="hi", tools=[{"type": "web_search"}], tool_choice={"type": "web_search"}).forced_builtin \
        == "web_search"


def test_custom_tool_calls_go_back_as_function_calls() -> None:
    request = parse(input=[{"role": "user", "content": "patch it"},
                           {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "diff"},
                           {"type": "custom_tool_call_output", "call_id": "c1", "output": "done"}])
    assistant, tool = request.chat["messages"][1:]
    assert assistant["tool_calls"][0]["function"] == {"name": "apply_patch", "arguments": '{"input":"diff"}'}
    assert tool == {"role": "tool", "tool_call_id": "c1", "content": "done"}


def test_reasoning_goes_back_only_to_its_provider() -> None:
    details = [{"type": "reasoning.text", "text": "hmm", "signature": "s", "format": "anthropic-claude-v1"}]
    encrypted = encode_reasoning("anthropic-a", details)
    assert decode_reasoning(encrypted) == ("anthropic-a", details)
    assert decode_reasoning("gAAAA-openai-own") is None
    request = parse(input=[{"role": "user", "content": "q"},
                           {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": encrypted},
                           {"role": "assistant", "content": "a"}, {"role": "user", "content": "q2"}])
    assert request.chat_for("anthropic-a")["messages"][1]["reasoning_details"] == details
    assert "reasoning_details" not in request.chat_for("openai-b")["messages"][1]
    assert "reasoning_details" not in request.chat["messages"][1]


def test_writer_without_upstream_events_still_ends_cleanly() -> None:
    writer = ResponseEventWriter(parse(input="hi"), "gen-1", "a/b", "p", 1)
    out = writer.end({"input_tokens": 1}, "stop")
    kinds = [line.split(b": ", 1)[1] for line in out.split(b"\n") if line.startswith(b"event:")]
    assert kinds == [b"response.created", b"response.in_progress", b"response.completed"]
    assert writer.final is not None and writer.final["output"] == []


@pytest.mark.parametrize("body", [
    {"input": [{"type": {"x": 1}}]},
    {"input": [{"role": "user", "content": [{"type": ["input_text"]}]}]},
])
def test_malformed_values_are_400s_not_crashes(body: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        parse(**body)


def test_malformed_tool_choice_falls_back_to_auto() -> None:
    tools = [{"type": "function", "name": "f"}]
    assert "tool_choice" not in parse(input="hi", tools=tools, tool_choice={"type": {"a": 1}}).chat
    assert parse(input="hi", tools=tools, tool_choice={"type": "allowed_tools", "mode": ["x"]}).chat[
        "tool_choice"] == "auto"


def _writer_events(texts: list[str], byte_path: bool) -> list[dict[str, Any]]:
    writer = ResponseEventWriter(parse(input="hi"), "gen-1", "a/b", "p", 1)
    taken: list[bool] = []
    byte_level = writer._text_delta

    def text_delta(event: bytes, out: list[bytes]) -> bool:
        taken.append(byte_path and byte_level(event, out))
        return taken[-1]

    writer._text_delta = text_delta  # type: ignore[method-assign]
    out = b""
    for text in texts:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}]}
        # json.dumps escapes non-ASCII, quotes and backslashes, as upstreams do
        out += writer.feed(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
    out += writer.end({}, "stop")
    assert any(taken) is byte_path  # the byte path served every delta after the first
    events = [orjson.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: ")]
    for event in events:  # ids and timestamps differ between two writers
        event.pop("item_id", None)
        event.pop("item", None)
        if "response" in event:
            event["response"] = {k: v for k, v in event["response"].items()
                                 if k not in {"completed_at", "output"}}
    return events


def test_text_deltas_read_from_bytes_match_the_parsed_path() -> None:
    texts = ["Hel", 'lo "quoted" \\', "", "caf\u00e9 \u2713", "end"]
    fast, slow = _writer_events(texts, True), _writer_events(texts, False)
    assert fast == slow
    assert "".join(e["delta"] for e in fast if e["type"] == "response.output_text.delta") == "".join(texts)
    done = next(e for e in fast if e["type"] == "response.output_text.done")
    assert done["text"] == "".join(texts)


# -- the routing view and the deferred translation ------------------------------------------------

_TEXT = st.text(alphabet="ab é\"\\", max_size=6)
_PART = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(["input_text", "output_text", "text"]), "text": _TEXT}),
    st.fixed_dictionaries({"type": st.sampled_from(["refusal", "input_file", "summary_text"]), "text": _TEXT}),
    st.fixed_dictionaries({"type": st.just("input_text"), "text": st.one_of(st.none(), st.integers())}),
    st.just({"type": "input_image", "image_url": "https://example.com/a.png"}),
    st.just("not a part"))
_PLAIN_ITEM = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "developer"]),
     "content": st.one_of(_TEXT, st.lists(st.fixed_dictionaries(
         {"type": st.sampled_from(["input_text", "output_text", "text"]), "text": _TEXT}), max_size=2))},
    optional={"type": st.just("message")})
_ITEM = st.one_of(
    _PLAIN_ITEM,
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer", "robot"]),
         "content": st.one_of(_TEXT, st.lists(_PART, max_size=3), st.none())},
        optional={"type": st.sampled_from(["message", "reasoning"]), "id": st.just("msg_1")}),
    st.fixed_dictionaries({"type": st.just("function_call"), "call_id": st.just("c1"), "name": st.just("f"),
                           "arguments": st.just("{}")}),
    st.fixed_dictionaries({"type": st.just("function_call_output"), "call_id": st.just("c1"),
                           "output": _TEXT}),
    st.just({"type": "reasoning", "summary": []}),
    st.just({"role": ["user"], "content": "x"}),
    st.just(["not", "an", "item"]))


@settings(max_examples=400, deadline=None)
@given(items=st.one_of(st.lists(_PLAIN_ITEM, max_size=6), st.lists(_ITEM, max_size=7)),
       instructions=st.one_of(st.none(), _TEXT))
def test_deferred_translation_says_what_the_translation_at_once_says(items: list[Any],
                                                                     instructions: str | None) -> None:
    """A request parsed for a possible pass-through (translation deferred when every item is a
    plain message) is rejected with the same 400, or translates to the same chat body, as one
    translated at once; its routing view is that body (with only the first two messages when
    the translation is deferred)."""
    body = {"model": "a/b", "input": items, "max_output_tokens": 9, "temperature": 0.5,
            **({"instructions": instructions} if instructions is not None else {})}
    try:
        eager = ResponsesRequest.parse(json.loads(json.dumps(body)), translate=True)
    except BadRequest as exc:
        with pytest.raises(BadRequest) as err:
            ResponsesRequest.parse(json.loads(json.dumps(body)))
        assert err.value.message == exc.message
        return
    deferred = ResponsesRequest.parse(json.loads(json.dumps(body)))
    # Deferred, the view holds the first two messages; translated at once, the whole conversation.
    assert deferred.route["messages"][:2] == eager.chat["messages"][:2]
    assert len(deferred.route["messages"]) <= 2 if deferred.plain else deferred.route is deferred.chat
    assert {k: v for k, v in deferred.route.items() if k != "messages"} == \
        {k: v for k, v in eager.chat.items() if k != "messages"}
    assert deferred.chat == eager.chat and deferred.reasoning == eager.reasoning


def test_a_plain_conversation_is_not_translated_until_needed() -> None:
    items = [{"type": "message", "role": "user" if i % 2 == 0 else "assistant",
              "content": [{"type": "input_text" if i % 2 == 0 else "output_text", "text": f"turn {i}"}]}
             for i in range(9)]
    request = parse(instructions="Rules.", input=items)
    assert request.plain and request.translated is None
    assert request.route["messages"] == [{"role": "system", "content": "Rules."},
                                         {"role": "user", "content": "turn 0"}]
    assert len(request.chat["messages"]) == 10 and request.translated is not None
    # A request no native endpoint can take is translated at once (which validates it).
    assert ResponsesRequest.parse({"model": "a/b", "input": items}, translate=True).translated is not None


@pytest.mark.parametrize("item", [
    {"type": "function_call_output", "call_id": "c1", "output": "x"},
    {"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}]},
    {"role": "user", "content": [{"type": "input_text", "text": 3}]},
    {"role": {"a": 1}, "content": "x"},
    {"role": "user", "content": {"text": "x"}},
])
def test_anything_but_plain_messages_is_translated_at_once(item: dict[str, Any]) -> None:
    body = {"model": "a/b", "input": [{"role": "user", "content": "hi"}, item]}
    try:
        request = ResponsesRequest.parse(body)
    except BadRequest:
        return  # rejected at once, as before
    assert not request.plain and request.translated is not None
