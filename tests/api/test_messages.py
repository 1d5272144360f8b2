"""POST /v1/messages with the official ``anthropic`` SDK: pass-through to Anthropic-format
providers, translation to and from the OpenAI and Gemini formats, errors in Anthropic's shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import anthropic
import pytest

from tests.adapters.harness import MODEL_OF, Reply, Stack, fixture, running_stack

ARGS = {"city": "Paris", "unit": "celsius"}
TOOL = {"name": "get_weather", "description": "Current weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"},
                                                          "unit": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def client(stack: Stack, **kwargs: Any) -> anthropic.AsyncAnthropic:
    auth = kwargs or {"api_key": stack.key}
    return anthropic.AsyncAnthropic(base_url=stack.url, max_retries=0, **auth)


# -- pass-through: the provider speaks Anthropic ------------------------------------------------

async def test_passthrough_forwards_the_body_untouched(stack: Stack) -> None:
    stack.stub.script(Reply.of("anthropic", "plain.json"))
    request: dict[str, Any] = {
        "model": "test/claude", "max_tokens": 100, "metadata": {"user_id": "u-1"},
        "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Hi"}]}
    message = await client(stack).messages.create(
        **request, extra_body={"top_k": 5}, extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"})
    got = stack.stub.received[-1]
    assert got.path == "/an/v1/messages"
    assert got.body == {**request, "top_k": 5, "model": "claude-up"}  # no double translation
    assert got.headers["anthropic-beta"] == "interleaved-thinking-2025-05-14"
    assert got.headers["x-api-key"] == "sk-an"
    assert message.content[0].text == "Hello there!"  # type: ignore[union-attr]
    assert message.model == "test/claude"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 5)
    row = stack.generation(message.id)
    assert (row["api"], row["provider"], row["prompt_tokens"], row["key_id"]) == \
        ("messages", "stub-anthropic", 12, stack.key_id)


async def test_passthrough_cache_usage_is_priced(stack: Stack) -> None:
    stack.stub.script(Reply.of("anthropic", "cache.json"))
    message = await client(stack).messages.create(model="test/claude", max_tokens=100,
                                                  messages=[{"role": "user", "content": "Hi"}])
    usage = message.usage  # relayed as the upstream reported it
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (150, 1000, 50)
    row = stack.generation(message.id)
    # prompt = 150 fresh + 1000 read + 50 written; 150*3000 + 1000*300 + 50*3750 + 20*15000 nano-USD
    assert (row["prompt_tokens"], row["cached_tokens"], row["cache_write_tokens"]) == (1200, 1000, 50)
    assert row["cost_nanousd"] == 1_237_500


async def test_passthrough_stream_relays_upstream_events(stack: Stack) -> None:
    stack.stub.script(Reply.of("anthropic", "plain.sse"))
    body = {"model": "test/claude", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    async with aiohttp.ClientSession() as http, http.post(
            stack.url + "/v1/messages", json=body, headers={"x-api-key": stack.key}) as resp:
        assert resp.status == 200
        raw = await resp.read()
    upstream = fixture("anthropic", "plain.sse")
    # Everything after message_start is the upstream's bytes, verbatim.
    assert raw.split(b"\n\n", 1)[1] == upstream.split(b"\n\n", 1)[1]
    start = json.loads(raw.split(b"\n\n", 1)[0].split(b"data: ", 1)[1])
    assert start["message"]["model"] == "test/claude"
    generation_id = start["message"]["id"]
    row = stack.generation(generation_id)
    assert (row["prompt_tokens"], row["completion_tokens"], row["streamed"], row["finish_reason"]) == \
        (12, 5, True, "stop")
    assert row["native_finish_reason"] == "end_turn"


async def test_passthrough_stream_tools_with_sdk(stack: Stack) -> None:
    stack.stub.script(Reply.of("anthropic", "tools.sse"))
    async with client(stack).messages.stream(model="test/claude", max_tokens=100, tools=[TOOL],  # type: ignore[list-item]
                                             messages=[{"role": "user", "content": "Weather?"}]) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    tool = next(b for b in final.content if b.type == "tool_use")
    assert (tool.name, tool.input) == ("get_weather", ARGS)
    assert final.usage.output_tokens == 20


# -- translated: the provider speaks OpenAI or Gemini -----------------------------------------

@pytest.mark.parametrize("fmt", ["openai", "gemini"])
async def test_translated_plain(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "plain.json"))
    message = await client(stack).messages.create(
        model=MODEL_OF[fmt], max_tokens=64, system="Be terse.", stop_sequences=["END"],
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                  {"role": "user", "content": [{"type": "text", "text": "Again"}]}])
    req = stack.stub.received[-1].body
    if fmt == "openai":
        assert [m["role"] for m in req["messages"]] == ["system", "user", "assistant", "user"]
        assert (req["max_tokens"], req["stop"]) == (64, ["END"])
    else:
        assert req["systemInstruction"]["parts"] == [{"text": "Be terse."}]
        assert [c["role"] for c in req["contents"]] == ["user", "model", "user"]
        assert req["generationConfig"]["maxOutputTokens"] == 64
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == "Hello there!"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 5)
    row = stack.generation(message.id)
    assert (row["api"], row["provider"]) == ("messages", f"stub-{fmt}")


@pytest.mark.parametrize("fmt", ["openai", "gemini"])
async def test_translated_stream(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "plain.sse"))
    events: list[str] = []
    async with client(stack).messages.stream(model=MODEL_OF[fmt], max_tokens=64,
                                             messages=[{"role": "user", "content": "Hi"}]) as stream:
        async for event in stream:
            events.append(event.type)
        final = await stream.get_final_message()
    assert final.content[0].text == "Hello there!"  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 5)
    raw = [e for e in events if e not in {"text"}]  # the SDK adds its own "text" helper events
    assert raw[0] == "message_start" and raw[-2:] == ["message_delta", "message_stop"]
    assert raw.count("content_block_start") == raw.count("content_block_stop") == 1


@pytest.mark.parametrize("fmt", ["openai", "gemini"])
async def test_translated_tools_stream(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "tools.sse"))
    async with client(stack).messages.stream(
            model=MODEL_OF[fmt], max_tokens=100, tools=[TOOL],  # type: ignore[list-item]
            tool_choice={"type": "tool", "name": "get_weather"},
            messages=[{"role": "user", "content": "Weather?"}]) as stream:
        final = await stream.get_final_message()
    req = stack.stub.received[-1].body
    if fmt == "openai":
        assert req["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert req["tools"][0]["function"]["parameters"] == TOOL["input_schema"]
    else:
        assert req["toolConfig"]["functionCallingConfig"]["allowedFunctionNames"] == ["get_weather"]
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use"]
    tool = final.content[1]
    assert (tool.name, tool.input) == ("get_weather", ARGS)  # type: ignore[union-attr]


async def test_translated_tool_result_round_trip(stack: Stack) -> None:
    """Anthropic tool_use/tool_result turns arrive at an OpenAI upstream as tool_calls + tool."""
    stack.stub.script(Reply.of("openai", "plain.json"))
    await client(stack).messages.create(model="test/oa", max_tokens=64, tools=[TOOL], messages=[  # type: ignore[list-item]
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."},
                                          {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": ARGS}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "21C"},
                                     {"type": "text", "text": "And tomorrow?"}]}])
    messages = stack.stub.received[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "user"]
    call = messages[1]["tool_calls"][0]
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == \
        ("toolu_9", "get_weather", ARGS)
    assert (messages[2]["tool_call_id"], messages[2]["content"]) == ("toolu_9", "21C")


async def test_translated_cache_usage(stack: Stack) -> None:
    """OpenAI's prompt_tokens include cached ones; Anthropic's input_tokens exclude them."""
    stack.stub.script(Reply.of("openai", "cache.json"))
    message = await client(stack).messages.create(model="test/oa", max_tokens=64,
                                                  messages=[{"role": "user", "content": "Hi"}])
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens) == (200, 1000)
    assert stack.generation(message.id)["cost_nanousd"] == 1_200_000


# -- auth and errors ------------------------------------------------------------------------------

async def test_bearer_auth_works_too(stack: Stack) -> None:
    stack.stub.script(Reply.of("anthropic", "plain.json"))
    message = await client(stack, auth_token=stack.key).messages.create(
        model="test/claude", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].text == "Hello there!"  # type: ignore[union-attr]


async def test_errors_in_anthropic_shape(stack: Stack) -> None:
    with pytest.raises(anthropic.AuthenticationError) as auth:
        await client(stack, api_key="sk-tw-wrong").messages.create(
            model="test/claude", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert auth.value.body["type"] == "error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client(stack).messages.create(model="nobody/nothing", max_tokens=10,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    async with aiohttp.ClientSession() as http, http.post(
            stack.url + "/api/v1/messages", headers={"x-api-key": stack.key},
            json={"model": "test/claude", "messages": [{"role": "user", "content": "Hi"}]}) as resp:
        assert resp.status == 400
        body = await resp.json()
    assert body["type"] == "error" and "max_tokens" in body["error"]["message"]


@pytest.mark.parametrize("fmt", ["anthropic", "openai"])
async def test_upstream_caller_error_relayed(stack: Stack, fmt: str) -> None:
    stack.stub.script(Reply.of(fmt, "error_400.json", status=400))
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client(stack).messages.create(model=MODEL_OF[fmt], max_tokens=10,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    upstream = json.loads(fixture(fmt, "error_400.json"))["error"]["message"]
    assert upstream in caught.value.body["error"]["message"]  # type: ignore[index]
