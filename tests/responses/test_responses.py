"""POST /v1/responses with the official ``openai`` SDK, through tollway to stub upstreams of
every wire format: objects and every streamed event checked against OpenAI's OpenAPI spec,
the translated upstream requests, exact metering in the ledger."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.adapters.harness import FORMATS, MODEL_OF, Reply, fixture
from tests.responses.conftest import ResponsesStack
from tests.responses.spec import event_errors, response_errors
from tests.support.servers import new_key
from tollway.responses import passthrough

WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                           "unit": {"type": "string"}}, "required": ["city"]}}
# fixture usage: 12 prompt, 5 completion tokens at $3 / $15 per million -> nano-USD
PLAIN_COST = 12 * 3000 + 5 * 15000


def raw_events(stack: ResponsesStack, body: dict[str, Any], key: str | None = None) -> tuple[httpx.Response,
                                                                                           list[dict[str, Any]]]:
    """POST a streaming request; the events, each checked to be `event: <type>` + matching data."""
    resp = httpx.post(stack.url + "/v1/responses", json={**body, "stream": True},
                      headers={"Authorization": f"Bearer {key or stack.key}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    events = []
    for block in resp.text.split("\n\n"):
        if not block.strip():
            continue
        name_line, data_line = block.split("\n")
        event = json.loads(data_line.removeprefix("data: "))
        assert name_line == f"event: {event['type']}"
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        assert event_errors(event) == [], event
    return resp, events


# -- a text turn, OpenAI-format chat upstream ------------------------------------------------------

async def test_text_turn_to_a_chat_upstream(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.json"))
    response = await stack.client().responses.create(
        model="test/oa", instructions="Be terse.", input="Hi", max_output_tokens=50, temperature=0.5,
        metadata={"run": "1"}, prompt_cache_key="task-42")
    got = stack.stub.received[-1]
    assert got.path == "/oa/v1/chat/completions"
    assert got.body["model"] == "gpt-up" and got.body["max_tokens"] == 50 and got.body["temperature"] == 0.5
    assert got.body["messages"] == [{"role": "system", "content": "Be terse."},
                                    {"role": "user", "content": "Hi"}]
    assert response.output_text == "Hello there!"
    assert response.status == "completed" and response.model == "test/oa"
    assert response.metadata == {"run": "1"}
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (12, 5, 17)
    raw = httpx.get(f"{stack.url}/v1/responses/{response.id}",
                    headers={"Authorization": f"Bearer {stack.key}"}).json()
    assert response_errors(raw) == []
    row = stack.generation(response.id)
    assert (row["api"], row["provider"], row["prompt_tokens"], row["completion_tokens"], row["cost_nanousd"],
            row["session_id"], row["key_id"]) == ("responses", "stub-openai", 12, 5, PLAIN_COST, "task-42",
                                                  stack.key_id)


async def test_stream_text_turn_events(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.sse"))
    resp, events = raw_events(stack, {"model": "test/oa", "input": "Hi"})
    types = [e["type"] for e in events]
    assert types == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "Hello there!"
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "Hello there!"
    row = stack.generation(resp.headers["x-generation-id"])
    assert final["id"] == row["id"]
    assert (row["api"], row["streamed"], row["prompt_tokens"], row["completion_tokens"]) == \
        ("responses", True, final["usage"]["input_tokens"], final["usage"]["output_tokens"])


async def test_sdk_stream_helper(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.sse"))
    async with stack.client().responses.stream(model="test/oa", input="Hi") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Hello there!"


# -- tools --------------------------------------------------------------------------------------

async def test_function_call_then_its_output_via_previous_response_id(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "tools.json"), Reply.of("openai", "plain.json"))
    client = stack.client()
    first = await client.responses.create(model="test/oa", input="Weather in Paris?", tools=[WEATHER],  # type: ignore[list-item]
                                          tool_choice="auto", parallel_tool_calls=False)
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments)["city"] == "Paris"
    sent = stack.stub.received[0].body
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": WEATHER["description"], "parameters": WEATHER["parameters"]}}]
    assert sent["parallel_tool_calls"] is False and sent["tool_choice"] == "auto"
    second = await client.responses.create(model="test/oa", previous_response_id=first.id, tools=[WEATHER],  # type: ignore[list-item]
                                           input=[{"type": "function_call_output", "call_id": call.call_id,
                                                   "output": "21C"}])
    assert second.output_text == "Hello there!"
    messages = stack.stub.received[1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == call.call_id
    assert messages[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "21C"}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_stream_function_call_events(stack: ResponsesStack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "tools.sse"))
    _resp, events = raw_events(stack, {"model": MODEL_OF[fmt], "input": "Weather?", "tools": [WEATHER]})
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    call = next(i for i in done if i["type"] == "function_call")
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert deltas == call["arguments"] and json.loads(call["arguments"])["city"] == "Paris"
    assert events[-1]["response"]["output"] == done


async def test_namespace_and_custom_tools_are_flattened(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "tools.json"))
    namespace = {"type": "namespace", "name": "weather_ns", "description": "weather tools",
                 "tools": [WEATHER, {"type": "custom", "name": "apply_patch", "description": "patch files"}]}
    resp = httpx.post(stack.url + "/v1/responses", headers={"Authorization": f"Bearer {stack.key}"}, json={
        "model": "test/oa", "input": "Weather?", "tools": [namespace], "store": False,
        "include": ["reasoning.encrypted_content"]})
    assert resp.status_code == 200, resp.text
    names = [t["function"]["name"] for t in stack.stub.received[-1].body["tools"]]
    assert names == ["get_weather", "apply_patch"]
    call = next(i for i in resp.json()["output"] if i["type"] == "function_call")
    assert call["namespace"] == "weather_ns"


# -- built-in tools ---------------------------------------------------------------------------

async def test_builtin_tools_are_dropped_and_noted(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.json"))
    resp = httpx.post(stack.url + "/v1/responses", headers={"Authorization": f"Bearer {stack.key}"}, json={
        "model": "test/oa", "input": "Hi", "tools": [{"type": "web_search"}, WEATHER]})
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-tollway-dropped-tools"] == "web_search"
    assert [t["function"]["name"] for t in stack.stub.received[-1].body["tools"]] == ["get_weather"]
    row = stack.generation(resp.json()["id"])
    assert json.loads(row["extra"]) == {"dropped_tools": ["web_search"]}


async def test_forcing_a_builtin_tool_is_a_400_naming_it(stack: ResponsesStack) -> None:
    stack.stub.script()
    with pytest.raises(openai.BadRequestError) as err:
        await stack.client().responses.create(model="test/oa", input="Hi", tools=[{"type": "web_search"}],
                                              tool_choice={"type": "web_search"})  # type: ignore[typeddict-item]
    assert "web_search" in err.value.message and "tool_choice" in err.value.message
    assert stack.stub.received == []


async def test_bad_input_is_a_400_in_openai_shape(stack: ResponsesStack) -> None:
    resp = httpx.post(stack.url + "/v1/responses", headers={"Authorization": f"Bearer {stack.key}"},
                      json={"model": "test/oa", "input": [{"type": "message", "role": "robot", "content": "x"}]})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert "input[0].role" in resp.json()["error"]["message"]


# -- Anthropic and Gemini upstreams -------------------------------------------------------------

async def test_anthropic_upstream_complete_and_stream(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("anthropic", "tools.json"), Reply.of("anthropic", "plain.sse"))
    response = await stack.client().responses.create(model="test/claude", input="Weather?", tools=[WEATHER],  # type: ignore[list-item]
                                                     instructions="Be terse.")
    got = stack.stub.received[0]
    assert got.path == "/an/v1/messages" and got.body["system"] == [{"type": "text", "text": "Be terse."}]
    assert got.body["tools"][0]["name"] == "get_weather"
    assert any(item.type == "function_call" for item in response.output)
    raw = httpx.get(f"{stack.url}/v1/responses/{response.id}",
                    headers={"Authorization": f"Bearer {stack.key}"}).json()
    assert response_errors(raw) == []
    _resp, events = raw_events(stack, {"model": "test/claude", "input": "Hi"})
    assert events[-1]["type"] == "response.completed"
    row = stack.generation(events[-1]["response"]["id"])
    assert (row["api"], row["provider"], row["prompt_tokens"]) == \
        ("responses", "stub-anthropic", events[-1]["response"]["usage"]["input_tokens"])


async def test_gemini_upstream(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("gemini", "plain.json"), Reply.of("gemini", "plain.sse"))
    response = await stack.client().responses.create(model="test/gem", input="Hi")
    assert stack.stub.received[0].path.startswith("/ge/")
    assert response.output_text
    _resp, events = raw_events(stack, {"model": "test/gem", "input": "Hi"})
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == response.output_text


THINKING = {"id": "msg_think", "type": "message", "role": "assistant", "model": "claude-up",
            "content": [{"type": "thinking", "thinking": "Paris is in France.", "signature": "sig-abc=="},
                        {"type": "text", "text": "It is sunny."}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": 20, "output_tokens": 9}}


async def test_anthropic_thinking_signature_round_trip(stack: ResponsesStack) -> None:
    stack.stub.script(Reply(200, json.dumps(THINKING).encode()), Reply.of("anthropic", "plain.json"))
    client = stack.client()
    first = await client.responses.create(model="test/claude", input="Weather?", store=False,
                                          include=["reasoning.encrypted_content"], reasoning={"effort": "low"})
    reasoning = next(item for item in first.output if item.type == "reasoning")
    assert reasoning.summary[0].text == "Paris is in France." and reasoning.encrypted_content
    history: list[Any] = [{"role": "user", "content": "Weather?"},
                          *(item.model_dump(exclude_none=True) for item in first.output),
                          {"role": "user", "content": "And tomorrow?"}]
    await client.responses.create(model="test/claude", input=history, store=False)
    assistant = stack.stub.received[1].body["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {"type": "thinking", "thinking": "Paris is in France.",
                                       "signature": "sig-abc=="}


async def test_other_providers_never_see_anthropic_reasoning(stack: ResponsesStack) -> None:
    stack.stub.script(Reply(200, json.dumps(THINKING).encode()), Reply.of("openai", "plain.json"))
    client = stack.client()
    first = await client.responses.create(model="test/claude", input="Weather?")
    await client.responses.create(model="test/oa", previous_response_id=first.id, input="And tomorrow?")
    assert all("reasoning_details" not in m for m in stack.stub.received[1].body["messages"])


# -- Responses-native pass-through --------------------------------------------------------------

OUTPUT_TEXT = {"type": "output_text", "text": "Native hi", "annotations": [], "logprobs": []}
NATIVE = {"id": "resp_up", "object": "response", "created_at": 1741476777, "status": "completed",
          "error": None, "incomplete_details": None, "instructions": None, "max_output_tokens": None,
          "model": "gpt-native", "output": [{"type": "message", "id": "msg_up", "status": "completed",
                                            "role": "assistant", "content": [OUTPUT_TEXT]}],
          "parallel_tool_calls": True, "previous_response_id": None, "store": False, "temperature": 1.0,
          "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [], "top_p": 1.0,
          "truncation": "disabled", "metadata": {},
          "usage": {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 0},
                    "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 34}}


async def test_native_provider_gets_the_body_as_is(stack: ResponsesStack) -> None:
    stack.stub.script(Reply(200, json.dumps(NATIVE).encode()))
    resp = httpx.post(stack.url + "/v1/responses", headers={"Authorization": f"Bearer {stack.key}"}, json={
        "model": "test/native", "input": "Hi", "tools": [{"type": "web_search"}],
        "tool_choice": {"type": "web_search"}})
    assert resp.status_code == 200, resp.text
    got = stack.stub.received[-1]
    assert got.path == "/na/v1/responses"
    assert got.body["model"] == "gpt-native" and got.body["tools"] == [{"type": "web_search"}]
    assert "x-tollway-dropped-tools" not in resp.headers
    doc = resp.json()
    assert doc["output"][0]["content"][0]["text"] == "Native hi" and doc["model"] == "test/native"
    row = stack.generation(doc["id"])
    # 20 fresh at $3, 10 cached at $0.30, 4 output at $15 per million tokens
    assert (row["prompt_tokens"], row["cached_tokens"], row["reasoning_tokens"], row["cost_nanousd"]) == \
        (30, 10, 2, 20 * 3000 + 10 * 300 + 4 * 15000)


async def test_native_stream_is_relayed(stack: ResponsesStack) -> None:
    final = {**NATIVE}
    started = {k: v for k, v in NATIVE.items() if k != "usage"}
    events = [{"type": "response.created", "sequence_number": 0, "response": {**started, "status": "in_progress",
                                                                              "output": []}},
              {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_up", "output_index": 0,
               "content_index": 0, "delta": "Native hi", "logprobs": []},
              {"type": "response.completed", "sequence_number": 2, "response": final}]
    body = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    stack.stub.script(Reply(200, body, "text/event-stream"))
    resp, got = raw_events(stack, {"model": "test/native", "input": "Hi"})
    assert got[1] == events[1]
    assert got[2]["response"]["id"] == resp.headers["x-generation-id"]
    row = stack.generation(resp.headers["x-generation-id"])
    assert (row["prompt_tokens"], row["completion_tokens"], row["streamed"]) == (30, 4, True)


def _codex_turn(model: str, *, first: bool) -> bytes:
    """A Codex-like turn (reasoning, a tool call and its output), "model" first or last."""
    fields: dict[str, Any] = {
        "stream": False, "store": False, "instructions": "Be terse.", "prompt_cache_key": "s-1",
        "tools": [WEATHER], "include": ["reasoning.encrypted_content"], "client_metadata": {"turn_id": "t1"},
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
                  {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB-opaque"},
                  {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather",
                   "arguments": "{\"city\": \"Oslo\"}", "status": "completed"},
                  {"type": "function_call_output", "call_id": "call_1", "output": "-3 \u00b0C, snow"}]}
    return json.dumps({"model": model, **fields} if first else {**fields, "model": model}).encode()


async def test_native_upstream_gets_the_same_body_from_the_raw_read(stack: ResponsesStack,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Items read raw (model named first) and read the ordinary way (model last) reach a native
    upstream as the same body, and the ledger gets the same record."""
    taken: list[bool] = []
    read = passthrough.read

    def spy(raw: bytes, default_store: bool) -> Any:
        request = read(raw, default_store)
        taken.append(request is not None)
        return request

    monkeypatch.setattr(passthrough, "read", spy)
    upstream, rows = [], []
    for first in (True, False):
        stack.stub.script(Reply(200, json.dumps(NATIVE).encode()))
        resp = httpx.post(stack.url + "/v1/responses", content=_codex_turn("test/native", first=first),
                          headers={"Authorization": f"Bearer {stack.key}", "Content-Type": "application/json"})
        assert resp.status_code == 200, resp.text
        upstream.append(stack.stub.received[-1].body)
        row = stack.generation(resp.json()["id"])
        rows.append({k: row[k] for k in ("api", "provider", "prompt_tokens", "completion_tokens", "cost_nanousd",
                                         "session_id")})
    assert taken == [True]  # the second body does not name its model first: never offered
    assert upstream[0] == upstream[1]
    assert upstream[0]["model"] == "gpt-native" and upstream[0]["store"] is False
    assert upstream[0]["input"] == json.loads(_codex_turn("test/native", first=True))["input"]
    assert rows[0] == rows[1] and rows[0]["session_id"] == "s-1"


# -- failures -------------------------------------------------------------------------------------

async def test_upstream_error_before_the_stream_is_openai_shaped(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "error_400.json", status=400))
    resp = httpx.post(stack.url + "/v1/responses", headers={"Authorization": f"Bearer {stack.key}"},
                      json={"model": "test/oa", "input": "Hi", "stream": True})
    assert resp.status_code == 400 and "error" in resp.json()


async def test_midstream_failure_is_response_failed(stack: ResponsesStack) -> None:
    plain = fixture("openai", "plain.sse")
    cut = plain[: plain.index(b"data:", plain.index(b"Hello"))]  # the stream ends after "Hello"
    stack.stub.script(Reply(200, cut, "text/event-stream"))
    resp, events = raw_events(stack, {"model": "test/oa", "input": "Hi"})
    assert events[-1]["type"] == "response.failed"
    assert events[-1]["response"]["status"] == "failed" and events[-1]["response"]["error"]["message"]
    row = stack.generation(resp.headers["x-generation-id"])
    assert (row["status"], row["api"]) == ("error", "responses")


def _sse(events: list[tuple[str | None, dict[str, Any]]]) -> bytes:
    return b"".join((f"event: {name}\n" if name else "").encode() + b"data: " + json.dumps(data).encode() + b"\n\n"
                    for name, data in events)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> tuple[None, dict[str, Any]]:
    return None, {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up",
                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


async def test_chat_upstream_reasoning_streams_summary_events(stack: ResponsesStack) -> None:
    usage = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up", "choices": [],
             "usage": {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16,
                       "completion_tokens_details": {"reasoning_tokens": 6}}}
    body = _sse([_chunk({"role": "assistant", "reasoning": "Think"}), _chunk({"reasoning": "ing."}),
                 _chunk({"content": "Done."}), _chunk({}, "stop"), (None, usage)]) + b"data: [DONE]\n\n"
    stack.stub.script(Reply(200, body, "text/event-stream"))
    resp, events = raw_events(stack, {"model": "test/oa", "input": "Hi", "reasoning": {"effort": "high"}})
    assert stack.stub.received[-1].body["reasoning_effort"] == "high"
    types = [e["type"] for e in events]
    assert types[2:9] == ["response.output_item.added", "response.reasoning_summary_part.added",
                          "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
                          "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
                          "response.output_item.done"]
    final = events[-1]["response"]
    assert final["output"][0]["summary"] == [{"type": "summary_text", "text": "Thinking."}]
    assert final["output"][1]["content"][0]["text"] == "Done."
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 6
    assert stack.generation(resp.headers["x-generation-id"])["reasoning_tokens"] == 6


THINKING_SSE = _sse([
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_t", "type": "message", "role": "assistant", "content": [], "model": "claude-up",
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 20, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": "Paris is "}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": "in France."}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "signature_delta", "signature": "sig-stream=="}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1,
                             "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "text_delta", "text": "Sunny."}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"output_tokens": 12}}),
    ("message_stop", {"type": "message_stop"}),
])


async def test_streamed_thinking_signature_round_trip(stack: ResponsesStack) -> None:
    stack.stub.script(Reply(200, THINKING_SSE, "text/event-stream"), Reply.of("anthropic", "plain.json"))
    _resp, events = raw_events(stack, {"model": "test/claude", "input": "Weather?", "store": False,
                                       "include": ["reasoning.encrypted_content"]})
    output = events[-1]["response"]["output"]
    assert output[0]["type"] == "reasoning" and output[0]["summary"][0]["text"] == "Paris is in France."
    assert output[0]["encrypted_content"].startswith("tw1.")
    await stack.client().responses.create(model="test/claude", store=False, input=[
        {"role": "user", "content": "Weather?"}, *output, {"role": "user", "content": "Tomorrow?"}])
    assistant = stack.stub.received[1].body["messages"][1]
    assert assistant["content"] == [
        {"type": "thinking", "thinking": "Paris is in France.", "signature": "sig-stream=="},
        {"type": "text", "text": "Sunny."}]


async def test_gemini_thought_signature_round_trip(stack: ResponsesStack) -> None:
    signed = json.loads(fixture("gemini", "tools.json"))
    signed["candidates"][0]["content"]["parts"][1]["thoughtSignature"] = "gem-sig=="
    stack.stub.script(Reply(200, json.dumps(signed).encode()), Reply.of("gemini", "plain.json"))
    client = stack.client()
    first = await client.responses.create(model="test/gem", input="Weather?", tools=[WEATHER])  # type: ignore[list-item]
    call = next(item for item in first.output if item.type == "function_call")
    await client.responses.create(model="test/gem", previous_response_id=first.id, tools=[WEATHER],  # type: ignore[list-item]
                                  input=[{"type": "function_call_output", "call_id": call.call_id, "output": "21C"}])
    model_turn = stack.stub.received[1].body["contents"][1]
    assert model_turn["role"] == "model"
    call_part = next(p for p in model_turn["parts"] if "functionCall" in p)
    assert call_part["thoughtSignature"] == "gem-sig=="


async def test_native_stream_cut_short_ends_with_an_error_event(stack: ResponsesStack) -> None:
    started = {k: v for k, v in NATIVE.items() if k != "usage"}
    events = [{"type": "response.created", "sequence_number": 0,
               "response": {**started, "status": "in_progress", "output": []}},
              {"type": "response.output_text.delta", "sequence_number": 1, "item_id": "msg_up", "output_index": 0,
               "content_index": 0, "delta": "Nat", "logprobs": []}]
    body = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    stack.stub.script(Reply(200, body, "text/event-stream"))
    resp, got = raw_events(stack, {"model": "test/native", "input": "Hi"})
    assert got[-1]["type"] == "error" and got[-1]["sequence_number"] == 2
    assert stack.generation(resp.headers["x-generation-id"])["status"] == "error"


def _native_events(final: bool) -> list[dict[str, Any]]:
    """A native stream of every kind of content event the relay passes without parsing, and
    one it does not know (parsed, relayed as it came)."""
    started = {k: v for k, v in NATIVE.items() if k != "usage"}
    call = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": ""}
    where = {"item_id": "msg_up", "output_index": 1, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": {**started, "status": "in_progress", "output": []}},
        {"type": "response.in_progress", "response": {**started, "status": "in_progress", "output": []}},
        {"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": 0,
         "part": {"type": "summary_text", "text": ""}},
        {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0,
         "delta": "Thinking \u00e9 \"hard\""},
        {"type": "response.web_search_call.searching", "item_id": "ws_1", "output_index": 0},
        {"type": "response.output_item.added", "output_index": 1, "item": call},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1,
         "delta": '{"city": "Par'},
        {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 1, "delta": 'is"}'},
        {"type": "response.content_part.added", **where, "part": {"type": "output_text", "text": ""}},
        {"type": "response.output_text.delta", **where, "delta": "Native \u2603 hi", "logprobs": []},
    ]
    if final:
        events.append({"type": "response.completed", "response": NATIVE})
    return [{**event, "sequence_number": n} for n, event in enumerate(events)]


@pytest.mark.parametrize("final", [True, False], ids=["whole", "cut short"])
async def test_native_content_events_are_relayed_byte_for_byte(stack: ResponsesStack, final: bool) -> None:
    events = _native_events(final)
    blocks = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
    stack.stub.script(Reply(200, b"".join(blocks), "text/event-stream"))  # written 37 bytes at a time
    # Read here, not by raw_events: the spec has no schema for web_search_call events.
    resp = httpx.post(stack.url + "/v1/responses", json={"model": "test/native", "input": "Hi", "stream": True},
                      headers={"Authorization": f"Bearer {stack.key}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    got = [json.loads(block.split("\ndata: ", 1)[1]) for block in resp.text.split("\n\n") if block.strip()]
    assert [e["sequence_number"] for e in got] == list(range(len(got)))
    for event, block in zip(events, blocks, strict=False):
        if "response" not in event:
            assert block in resp.content  # as the upstream spelt it
    assert [e for e in got if "response" not in e and e["type"] != "error"] == \
        [e for e in events if "response" not in e]
    assert got[0]["response"]["id"] == resp.headers["x-generation-id"]
    row = stack.generation(resp.headers["x-generation-id"])
    if final:
        assert got[-1]["type"] == "response.completed" and got[-1]["response"]["model"] == "test/native"
        assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("success", 30, 4)
    else:  # the error that ends it is numbered after the last (unparsed) event relayed
        assert got[-1]["type"] == "error" and got[-1]["sequence_number"] == len(events)
        assert row["status"] == "error"


async def test_json_schema_format_and_truncation(stack: ResponsesStack) -> None:
    truncated = json.loads(fixture("openai", "plain.json"))
    truncated["choices"][0]["finish_reason"] = "length"
    stack.stub.script(Reply(200, json.dumps(truncated).encode()))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    resp = httpx.post(stack.url + "/api/v1/responses", headers={"Authorization": f"Bearer {stack.key}"}, json={
        "model": "test/oa", "input": "City?", "max_output_tokens": 5,
        "text": {"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}}})
    assert resp.status_code == 200, resp.text
    assert stack.stub.received[-1].body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}}
    doc = resp.json()
    assert doc["status"] == "incomplete" and doc["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response_errors(doc) == []


async def test_fallback_to_another_wire_format(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("anthropic", "error_500.json", status=500), Reply.of("openai", "plain.sse"))
    resp, events = raw_events(stack, {"model": "test/mixed", "input": "Hi",
                                      "provider": {"order": ["stub-anthropic", "stub-openai"]}})
    assert [r.path for r in stack.stub.received] == ["/an/v1/messages", "/oa/v1/chat/completions"]
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "Hello there!"
    row = stack.generation(resp.headers["x-generation-id"])
    assert row["provider"] == "stub-openai"
    assert [a["provider"] for a in json.loads(row["attempts"])] == ["stub-anthropic", "stub-openai"]


async def test_reasoning_content_goes_back_to_a_deepseek_style_upstream(stack: ResponsesStack) -> None:
    call = {"index": 0, "id": "call_r1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
    usage = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up", "choices": [],
             "usage": {"prompt_tokens": 7, "completion_tokens": 9, "total_tokens": 16}}
    body = _sse([_chunk({"role": "assistant", "reasoning_content": "Need the "}),
                 _chunk({"reasoning_content": "weather."}), _chunk({"tool_calls": [call]}),
                 _chunk({}, "tool_calls"), (None, usage)]) + b"data: [DONE]\n\n"
    stack.stub.script(Reply(200, body, "text/event-stream"), Reply.of("openai", "plain.json"))
    client = stack.client()
    async with client.responses.stream(model="test/oa", input="Weather?", tools=[WEATHER]) as stream:  # type: ignore[list-item]
        first = await stream.get_final_response()
    assert first.output[0].type == "reasoning" and first.output[0].summary[0].text == "Need the weather."
    await client.responses.create(model="test/oa", previous_response_id=first.id, tools=[WEATHER],  # type: ignore[list-item]
                                  input=[{"type": "function_call_output", "call_id": "call_r1", "output": "21C"}])
    assistant = stack.stub.received[1].body["messages"][1]
    assert assistant["reasoning_content"] == "Need the weather."
    assert assistant["tool_calls"][0]["id"] == "call_r1"


async def test_a_credit_limit_caps_the_output_a_native_upstream_is_asked_for(stack: ResponsesStack) -> None:
    _key_id, capped = new_key(stack.database, name="capped", limit_nanousd=1_000_000)  # ~60 tokens at $15/M
    stack.stub.script(Reply(200, json.dumps(NATIVE).encode()))
    resp = httpx.post(stack.url + "/v1/responses", headers={"Authorization": f"Bearer {capped}"},
                      json={"model": "test/native", "input": "Hi"})  # no max: the default, capped
    assert resp.status_code == 200, resp.text
    sent = stack.stub.received[-1].body["max_output_tokens"]
    assert sent > 0 and sent * 15_000 <= 1_000_000
