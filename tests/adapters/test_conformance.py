"""One conformance suite for every wire format: the same cases, the official ``openai`` SDK as
the client, a stub upstream replaying each provider's documented wire format from
``tests/fixtures/wire/<format>/``.

Each case checks both directions: what the upstream received (the translated request, read
through a per-format view) and what the client got back (identical across formats).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.adapters.harness import FORMATS, MODEL_OF, Reply, Stack, fixture, running_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def client(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.url + "/v1", api_key=stack.key, max_retries=0)


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city"]}}}
ARGS = {"city": "Paris", "unit": "celsius"}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


# -- per-format views of the request the upstream received -----------------------------------

def system_text(fmt: str, req: dict[str, Any]) -> str:
    if fmt == "openai":
        return str(req["messages"][0]["content"])
    if fmt == "anthropic":
        return "".join(b["text"] for b in req["system"])
    return "".join(p["text"] for p in req["systemInstruction"]["parts"])


def turns(fmt: str, req: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of the conversation, roles in OpenAI's words."""
    if fmt == "openai":
        return [(m["role"], m["content"]) for m in req["messages"] if m["role"] != "system"]
    if fmt == "anthropic":
        return [(m["role"], "".join(b.get("text", "") for b in m["content"])) for m in req["messages"]]
    return [("assistant" if c["role"] == "model" else c["role"], "".join(p.get("text", "") for p in c["parts"]))
            for c in req["contents"]]


def tools_of(fmt: str, req: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if fmt == "openai":
        return [(t["function"]["name"], t["function"]["parameters"]) for t in req["tools"]]
    if fmt == "anthropic":
        return [(t["name"], t["input_schema"]) for t in req["tools"]]
    return [(d["name"], d["parametersJsonSchema"]) for d in req["tools"][0]["functionDeclarations"]]


def forced_tool(fmt: str, req: dict[str, Any]) -> str:
    if fmt == "openai":
        return str(req["tool_choice"]["function"]["name"])
    if fmt == "anthropic":
        assert req["tool_choice"]["type"] == "tool"
        return str(req["tool_choice"]["name"])
    config = req["toolConfig"]["functionCallingConfig"]
    assert config["mode"] == "ANY"
    return str(config["allowedFunctionNames"][0])


def tool_round_trip(fmt: str, req: dict[str, Any]) -> tuple[str, dict[str, Any], str, str]:
    """(called name, its arguments, the result's call id or name, the result text)."""
    if fmt == "openai":
        call = req["messages"][2]["tool_calls"][0]
        result = req["messages"][3]
        return call["function"]["name"], json.loads(call["function"]["arguments"]), \
            result["tool_call_id"], result["content"]
    if fmt == "anthropic":
        use = next(b for b in req["messages"][1]["content"] if b["type"] == "tool_use")
        result = req["messages"][2]["content"][0]
        assert result["type"] == "tool_result"
        return use["name"], use["input"], result["tool_use_id"], result["content"]
    call = next(p["functionCall"] for p in req["contents"][1]["parts"] if "functionCall" in p)
    response = req["contents"][2]["parts"][0]["functionResponse"]
    return call["name"], call["args"], response["name"], json.dumps(response["response"])


def images_of(fmt: str, req: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, payload) per image: ("inline", base64) or ("url", url)."""
    out: list[tuple[str, str]] = []
    if fmt == "openai":
        for part in req["messages"][0]["content"]:
            if part["type"] == "image_url":
                url = part["image_url"]["url"]
                out.append(("inline", url.split(",", 1)[1]) if url.startswith("data:") else ("url", url))
    elif fmt == "anthropic":
        for block in req["messages"][0]["content"]:
            if block["type"] == "image":
                src = block["source"]
                assert src["type"] == "url" or src["media_type"] == "image/png"
                out.append(("inline", src["data"]) if src["type"] == "base64" else ("url", src["url"]))
    else:
        for part in req["contents"][0]["parts"]:
            if "inlineData" in part:
                assert part["inlineData"]["mimeType"] == "image/png"
                out.append(("inline", part["inlineData"]["data"]))
            elif "fileData" in part:
                out.append(("url", part["fileData"]["fileUri"]))
    return out


def json_schema_of(fmt: str, req: dict[str, Any]) -> dict[str, Any]:
    if fmt == "openai":
        return dict(req["response_format"]["json_schema"]["schema"])
    if fmt == "anthropic":
        assert req["output_config"]["format"]["type"] == "json_schema"
        return dict(req["output_config"]["format"]["schema"])
    assert req["generationConfig"]["responseMimeType"] == "application/json"
    return dict(req["generationConfig"]["responseJsonSchema"])


def limits_of(fmt: str, req: dict[str, Any]) -> tuple[int, list[str], float]:
    if fmt == "openai":
        return req["max_tokens"], req["stop"], req["temperature"]
    if fmt == "anthropic":
        return req["max_tokens"], req["stop_sequences"], req["temperature"]
    config = req["generationConfig"]
    return config["maxOutputTokens"], config["stopSequences"], config["temperature"]


def check_transport(fmt: str, stack: Stack, stream: bool) -> None:
    """The documented path and auth headers of each format."""
    got = stack.stub.received[-1]
    if fmt == "openai":
        assert got.path == "/oa/v1/chat/completions"
        assert got.headers["authorization"] == "Bearer sk-oa"
    elif fmt == "anthropic":
        assert got.path == "/an/v1/messages"
        assert got.headers["x-api-key"] == "sk-an"
        assert got.headers["anthropic-version"] == "2023-06-01"
        assert got.body["model"] == "claude-up"
        assert got.body.get("stream", False) is stream
    else:
        method = "streamGenerateContent" if stream else "generateContent"
        assert got.path == f"/ge/v1beta/models/gemini-up:{method}"
        assert got.query == ("alt=sse" if stream else "")
        assert got.headers["x-goog-api-key"] == "sk-ge"


# -- the cases ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
async def test_plain_multi_turn(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "plain.json"))
    result = await client(stack).chat.completions.create(
        model=MODEL_OF[fmt], max_tokens=300, temperature=0.5, stop=["END"],
        messages=[{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello."},
                  {"role": "user", "content": "Again"}])
    req = stack.stub.received[-1].body
    check_transport(fmt, stack, stream=False)
    assert system_text(fmt, req) == "You are terse."
    assert turns(fmt, req) == [("user", "Hi"), ("assistant", "Hello."), ("user", "Again")]
    assert limits_of(fmt, req) == (300, ["END"], 0.5)
    assert result.choices[0].message.content == "Hello there!"
    assert result.choices[0].finish_reason == "stop"
    assert result.model == MODEL_OF[fmt]
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (12, 5)
    row = stack.generation(result.id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["api"]) == (12, 5, "chat")
    assert row["key_id"] == stack.key_id
    assert row["native_finish_reason"] == {"openai": "stop", "anthropic": "end_turn", "gemini": "STOP"}[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_plain_stream(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "plain.sse"))
    stream = await client(stack).chat.completions.create(
        model=MODEL_OF[fmt], messages=[{"role": "user", "content": "Hi"}], stream=True)
    text, finish, usage, ids = "", None, None, set()
    async for chunk in stream:
        ids.add(chunk.id)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
        usage = chunk.usage or usage
    check_transport(fmt, stack, stream=True)
    assert text == "Hello there!"
    assert finish == "stop"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (12, 5)
    assert len(ids) == 1
    row = stack.generation(ids.pop())
    assert row["streamed"] and row["status"] == "success" and not row["estimated"]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_tools(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "tools.json"))
    result = await client(stack).chat.completions.create(
        model=MODEL_OF[fmt], messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    req = stack.stub.received[-1].body
    assert tools_of(fmt, req) == [("get_weather", WEATHER_TOOL["function"]["parameters"])]  # type: ignore[index]
    assert forced_tool(fmt, req) == "get_weather"
    message = result.choices[0].message
    assert result.choices[0].finish_reason == "tool_calls"
    assert message.content == "Let me check."
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == ARGS  # type: ignore[union-attr]
    assert call.id


@pytest.mark.parametrize("fmt", FORMATS)
async def test_streamed_tools(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "tools.sse"))
    stream = await client(stack).chat.completions.create(
        model=MODEL_OF[fmt], messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL], stream=True)  # type: ignore[list-item]
    calls: dict[int, dict[str, str]] = {}
    text, finish = "", None
    async for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for delta in choice.delta.tool_calls or ():
                slot = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += delta.id or ""
                if delta.function is not None:
                    slot["name"] += delta.function.name or ""
                    slot["arguments"] += delta.function.arguments or ""
    assert text == "Let me check."
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == ARGS


@pytest.mark.parametrize("fmt", FORMATS)
async def test_tool_results_round_trip(stack: Stack, fmt: str) -> None:
    """A tool call and its result sent back keep name, arguments and pairing intact."""
    stack.stub.script(Reply.of(fmt, "plain.json"))
    await client(stack).chat.completions.create(
        model=MODEL_OF[fmt], tools=[WEATHER_TOOL],  # type: ignore[list-item]
        messages=[{"role": "system", "content": "Use tools."},
                  {"role": "user", "content": "Weather in Paris?"},
                  {"role": "assistant", "content": None, "tool_calls": [{
                      "id": "call_7", "type": "function",
                      "function": {"name": "get_weather", "arguments": json.dumps(ARGS)}}]},
                  {"role": "tool", "tool_call_id": "call_7", "content": '{"temp": 21}'}])
    name, args, link, result = tool_round_trip(fmt, stack.stub.received[-1].body)
    assert (name, args) == ("get_weather", ARGS)
    assert link == ("get_weather" if fmt == "gemini" else "call_7")
    assert json.loads(result) == {"temp": 21}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_images(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "plain.json"))
    await client(stack).chat.completions.create(model=MODEL_OF[fmt], messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare these"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert images_of(fmt, stack.stub.received[-1].body) == [("inline", PIXEL), ("url", "https://example.com/cat.png")]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_json_schema(stack: Stack, fmt: str) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    stack.stub.script(Reply.of(fmt, "plain.json"))
    await client(stack).chat.completions.create(
        model=MODEL_OF[fmt], messages=[{"role": "user", "content": "2+2?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema, "strict": True}})
    assert json_schema_of(fmt, stack.stub.received[-1].body) == schema


@pytest.mark.parametrize("fmt", FORMATS)
async def test_caller_error_is_relayed(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "error_400.json", status=400))
    with pytest.raises(openai.BadRequestError) as caught:
        await client(stack).chat.completions.create(model=MODEL_OF[fmt], messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 400
    upstream_message = json.loads(fixture(fmt, "error_400.json"))["error"]["message"]
    assert upstream_message in str(caught.value.message)
    assert len(stack.stub.received) == 1  # the caller's own mistake is not retried


@pytest.mark.parametrize("fmt", FORMATS)
async def test_upstream_failure_is_502(stack: Stack, fmt: str) -> None:
    status = {"openai": 500, "anthropic": 529, "gemini": 503}[fmt]
    stack.stub.script(Reply.of(fmt, "error_500.json", status=status))
    with pytest.raises(openai.APIStatusError) as caught:
        await client(stack).chat.completions.create(model=MODEL_OF[fmt], messages=[{"role": "user", "content": "x"}],
                                                    stream=True)
    assert caught.value.status_code == 502
    body = caught.value.body
    assert isinstance(body, dict) and body["metadata"]["upstream_status"] == status


# Per format: (prompt, completion, cached, cache writes, reasoning, cost in nano-USD) at
# 3 / 15 / 0.3 / 3.75 USD per Mtok (prompt / completion / cache read / cache write).
CACHE_EXPECTED = {
    # prompt_tokens 1200 of which 1000 cached: 200*3000 + 1000*300 + 20*15000
    "openai": (1200, 20, 1000, 0, 8, 1_200_000),
    # input 150 EXCLUDES cache: prompt = 150 + 1000 read + 50 written;
    # 150*3000 + 1000*300 + 50*3750 + 20*15000 = 450000 + 300000 + 187500 + 300000
    "anthropic": (1200, 20, 1000, 50, 8, 1_237_500),
    # promptTokenCount 1200 INCLUDES the 1000 cached; candidates 12 + thoughts 8 = 20
    "gemini": (1200, 20, 1000, 0, 8, 1_200_000),
}


@pytest.mark.parametrize("fmt", FORMATS)
async def test_usage_with_cache_is_priced(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "cache.json"))
    result = await client(stack).chat.completions.create(model=MODEL_OF[fmt],
                                                         messages=[{"role": "user", "content": "x"}])
    prompt, completion, cached, writes, reasoning, cost = CACHE_EXPECTED[fmt]
    usage = result.model_dump()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (prompt, completion)
    assert usage["prompt_tokens_details"]["cached_tokens"] == cached
    assert usage["prompt_tokens_details"]["cache_write_tokens"] == writes
    assert usage["completion_tokens_details"]["reasoning_tokens"] == reasoning
    assert usage["tollway"]["cost_nanousd"] == cost
    row = stack.generation(result.id)
    assert (row["prompt_tokens"], row["cached_tokens"], row["cache_write_tokens"], row["cost_nanousd"]) == \
        (prompt, cached, writes, cost)


async def test_reasoning_settings_translate(stack: Stack) -> None:
    """OpenRouter's ``reasoning`` becomes Anthropic ``thinking`` and Gemini ``thinkingConfig``."""
    body = {"reasoning": {"max_tokens": 2048}}
    stack.stub.script(Reply.of("anthropic", "plain.json"), Reply.of("gemini", "plain.json"))
    for fmt in ("anthropic", "gemini"):
        await client(stack).chat.completions.create(
            model=MODEL_OF[fmt], max_tokens=8000, temperature=0.3, extra_body=body,
            messages=[{"role": "user", "content": "think"}])
    anthropic_req, gemini_req = (r.body for r in stack.stub.received)
    assert anthropic_req["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "temperature" not in anthropic_req  # Anthropic refuses temperature with thinking
    assert gemini_req["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 2048, "includeThoughts": True}


async def test_cache_control_passes_to_anthropic(stack: Stack) -> None:
    stack.stub.script(Reply.of("anthropic", "plain.json"))
    await client(stack).chat.completions.create(model="test/claude", messages=[
        {"role": "system", "content": [{"type": "text", "text": "long context",  # type: ignore[list-item, typeddict-unknown-key]
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "q"}])
    assert stack.stub.received[-1].body["system"] == [
        {"type": "text", "text": "long context", "cache_control": {"type": "ephemeral"}}]


async def test_thinking_output_becomes_reasoning(stack: Stack) -> None:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-up",
               "content": [{"type": "thinking", "thinking": "2+2 is 4", "signature": "sig"},
                           {"type": "text", "text": "4"}],
               "stop_reason": "max_tokens", "stop_sequence": None,
               "usage": {"input_tokens": 3, "output_tokens": 9}}
    stack.stub.script(Reply(200, json.dumps(message).encode()))
    result = await client(stack).chat.completions.create(model="test/claude",
                                                         messages=[{"role": "user", "content": "2+2"}])
    dumped = result.choices[0].message.model_dump()
    assert dumped["content"] == "4" and dumped["reasoning"] == "2+2 is 4"
    assert result.choices[0].finish_reason == "length"
    assert result.model_dump()["choices"][0]["native_finish_reason"] == "max_tokens"


async def test_failover_across_wire_formats(stack: Stack) -> None:
    """An overloaded Anthropic endpoint falls over to an OpenAI-format one; both attempts kept."""
    stack.stub.script(Reply.of("anthropic", "error_500.json", status=529), Reply.of("openai", "plain.json"))
    result = await client(stack).chat.completions.create(
        model="test/mixed", messages=[{"role": "user", "content": "x"}],
        extra_body={"provider": {"order": ["stub-anthropic", "stub-openai"]}})
    assert result.choices[0].message.content == "Hello there!"
    assert [r.path for r in stack.stub.received] == ["/an/v1/messages", "/oa/v1/chat/completions"]
    row = stack.generation(result.id)
    assert row["provider"] == "stub-openai"
    assert [a["status"] for a in json.loads(row["attempts"])] == [529, 200]
