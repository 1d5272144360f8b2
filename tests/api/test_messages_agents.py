"""/v1/messages as agent CLIs use it: the request Claude Code 2.1.328 really sends (recorded in
tests/fixtures/agents), passed through or translated; ``/v1/messages/count_tokens``; agents
attributed from their headers (catalog/data/agents.json)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from tests.adapters.harness import Reply, Stack, fixture, running_stack
from tests.test_messages_passthrough import TAIL
from tollway.catalog.agents import load_agents, parse_agents
from tollway.messages import MessagesRequest
from tollway.metering import estimate_prompt_tokens

AGENT_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"


def recorded(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((AGENT_FIXTURES / name).read_text())
    return doc


CLAUDE_CODE = recorded("claude_code_2.1.328_request.json")


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


async def replay(stack: Stack, model: str, *, stream: bool = False, path: str = "/v1/messages",
                 drop_headers: tuple[str, ...] = ()) -> tuple[int, dict[str, str], bytes]:
    """Claude Code's recorded request, sent as it sent it (query, headers), our key and model."""
    body = copy.deepcopy(CLAUDE_CODE["body"])
    body["model"], body["stream"] = model, stream
    headers = {k: v for k, v in CLAUDE_CODE["headers"].items()
               if k.lower() not in {"x-api-key", "accept-encoding", "connection", *drop_headers}}
    headers["x-api-key"] = stack.key
    async with aiohttp.ClientSession() as http, http.post(
            f"{stack.url}{path}?{CLAUDE_CODE['query']}", json=body, headers=headers) as resp:
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read()


def anthropic_reply(text: str = "Hi!") -> Reply:
    return Reply(200, json.dumps({
        "id": "msg_up", "type": "message", "role": "assistant", "model": "claude-up",
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 21, "output_tokens": 3}}).encode())


# -- the real Claude Code request ------------------------------------------------------------------

async def test_claude_code_request_passes_through_unchanged(stack: Stack) -> None:
    stack.stub.script(anthropic_reply())
    status, headers, raw = await replay(stack, "test/claude")
    assert status == 200, raw
    got = stack.stub.received[-1]
    assert (got.path, got.query) == ("/an/v1/messages", "beta=true")
    expected = {**CLAUDE_CODE["body"], "model": "claude-up"}
    expected.pop("stream")
    assert got.body == expected  # system messages, context_management, thinking, effort: all kept
    assert got.headers["anthropic-beta"] == CLAUDE_CODE["headers"]["anthropic-beta"]
    assert got.headers["x-api-key"] == "sk-an"
    row = stack.generation(headers["x-generation-id"])
    session = CLAUDE_CODE["headers"]["X-Claude-Code-Session-Id"]
    assert (row["app_title"], row["session_id"]) == ("Claude Code", session)
    # Nothing dropped on a pass-through; the caller's user id is kept for analytics (external_user);
    # the agent's default app category (agents.json) is recorded.
    user = CLAUDE_CODE["body"]["metadata"]["user_id"]
    assert json.loads(row["extra"]) == {"user": user, "categories": ["cli-agent"]}


@pytest.mark.parametrize("fmt, model", [("openai", "test/oa"), ("gemini", "test/gem")])
async def test_claude_code_request_is_translated(stack: Stack, fmt: str, model: str) -> None:
    stack.stub.script(Reply.of(fmt, "plain.sse"))
    status, headers, raw = await replay(stack, model, stream=True)
    assert status == 200, raw
    assert b"event: message_stop" in raw
    got = stack.stub.received[-1].body
    if fmt == "openai":
        roles = [m["role"] for m in got["messages"]]
        assert roles == ["system", "user", "system"]  # the mid-conversation system message kept in place
        assert got["reasoning"] == {"enabled": True, "effort": "high"}
        assert "context_management" not in got and "output_config" not in got
        names = [t["function"]["name"] for t in got["tools"]]
        assert "Read" in names and "DeferredToolPlaceholder" not in names  # deferred tools stay unloaded
    else:
        assert "Environment" in json.dumps(got["systemInstruction"])
    row = stack.generation(headers["x-generation-id"])
    deferred = next(i for i, t in enumerate(CLAUDE_CODE["body"]["tools"]) if t.get("defer_loading"))
    assert json.loads(row["extra"]) == {"dropped": ["context_management", f"tools[{deferred}]"],
                                        "user": CLAUDE_CODE["body"]["metadata"]["user_id"],
                                        "categories": ["cli-agent"]}
    assert row["app_title"] == "Claude Code"


def test_effort_and_thinking_mapping() -> None:
    base = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    cases = [({"thinking": {"type": "enabled", "budget_tokens": 2048}}, {"max_tokens": 2048}),
             ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}},
              {"enabled": True, "effort": "xhigh"}),
             ({"output_config": {"effort": "low"}}, {"effort": "low"}),
             ({"thinking": {"type": "disabled"}, "output_config": {"effort": "low"}}, None)]
    for extra, reasoning in cases:
        openai = MessagesRequest.parse({**base, **extra}).openai
        assert openai.get("reasoning") == reasoning, extra


def test_the_routing_view_is_the_translation_without_the_conversation() -> None:
    """Routing, stickiness and the ledger read ``route`` (a pass-through never translates the
    conversation): every field of the full translation, and its first messages (two at least)."""
    tool_use = {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}}
    tool_result = {"type": "tool_result", "tool_use_id": "t1", "content": "42"}
    text = {"type": "text", "text": "hi"}
    conversations = [
        [{"role": "user", "content": "hi"}],
        [{"role": "user", "content": [text]}, {"role": "assistant", "content": [text, tool_use]},
         {"role": "user", "content": [tool_result, text]}, {"role": "assistant", "content": "ok"}],
        [{"role": "user", "content": []}, {"role": "assistant", "content": []},
         {"role": "user", "content": [tool_result, tool_result]}, {"role": "user", "content": "x"}],
        [{"role": "system", "content": "env"}, {"role": "user", "content": [text, {**text, "cache_control": {}}]},
         {"role": "assistant", "content": [{"type": "text", "text": ""}]}, {"role": "user", "content": ""}],
    ]
    for system in (None, "Be terse.", [text]):
        for messages in conversations:
            body = {"model": "m", "max_tokens": 5, "messages": messages, "stream": True,
                    "tools": [{"name": "f", "input_schema": {"type": "object"}}], "stop_sequences": ["x"],
                    "metadata": {"user_id": "u"}, **({"system": system} if system else {})}
            request = MessagesRequest.parse(body)
            full = request.openai
            assert {k: v for k, v in request.route.items() if k != "messages"} == \
                {k: v for k, v in full.items() if k != "messages"}
            head = request.route["messages"]  # a prefix of the translation, two messages at least
            assert head == full["messages"][:len(head)], (system, messages)
            assert len(head) >= min(2, len(full["messages"]))


async def test_both_readings_send_the_upstream_the_same_body(stack: Stack,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Claude Code's request with "model" first (as it sends it) is read for the pass-through,
    its conversation kept as raw JSON; the same request with "model" last is read the ordinary
    way.  The upstream gets the same body, and the ledger the same record, either way."""
    taken: list[bool] = []
    one_pass = MessagesRequest.parse_passthrough.__func__  # type: ignore[attr-defined]

    def spy(cls: type[MessagesRequest], raw: bytes) -> MessagesRequest | None:
        parsed: MessagesRequest | None = one_pass(cls, raw)
        taken.append(parsed is not None)
        return parsed

    monkeypatch.setattr(MessagesRequest, "parse_passthrough", classmethod(spy))
    body = {**copy.deepcopy(CLAUDE_CODE["body"]), "model": "test/claude", "stream": False}
    body["messages"] += TAIL  # later in the session: longer than what routing reads
    last = {k: v for k, v in body.items() if k != "model"} | {"model": "test/claude"}
    received, rows = [], []
    for sent in (body, last):
        stack.stub.script(anthropic_reply())
        async with aiohttp.ClientSession() as http, http.post(
                stack.url + "/v1/messages", data=orjson.dumps(sent),
                headers={"x-api-key": stack.key, "content-type": "application/json"}) as resp:
            assert resp.status == 200, await resp.text()
            generation = resp.headers["x-generation-id"]
        received.append(stack.stub.received[-1].body)
        row = stack.generation(generation)
        rows.append({k: row[k] for k in ("api", "provider", "model", "prompt_tokens", "completion_tokens",
                                         "cost_nanousd", "extra")})
    assert taken == [True]  # the "model"-last body never tried the raw reading
    expected = {k: v for k, v in body.items() if k != "stream"} | {"model": "claude-up"}
    assert received[0] == received[1] == expected
    assert rows[0] == rows[1]


async def test_a_flaw_deep_in_a_passed_through_conversation_is_the_upstreams_to_name(
        stack: Stack) -> None:
    """Past the messages tollway reads, a pass-through leaves the conversation to its upstream,
    which speaks the same format: the body goes as sent, and the upstream's 400 reaches the
    client in Anthropic's shape."""
    stack.stub.script(Reply.of("anthropic", "error_400.json", status=400))
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                *TAIL, {"role": "tool", "content": "d"}]
    raw = orjson.dumps({"model": "test/claude", "max_tokens": 5, "messages": messages})
    async with aiohttp.ClientSession() as http, http.post(
            stack.url + "/v1/messages", data=raw, headers={"x-api-key": stack.key}) as resp:
        assert resp.status == 400, await resp.text()
        error = await resp.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    upstream = json.loads(fixture("anthropic", "error_400.json"))["error"]["message"]
    assert upstream in error["error"]["message"]
    assert stack.stub.received[-1].body["messages"] == messages  # forwarded as sent


async def test_a_later_model_key_is_read_the_ordinary_way(stack: Stack) -> None:
    """The first "model" names a pass-through model, a later one (the one that counts) a
    translated model: the body is read and checked whole, so the flaw deep in it is tollway's
    400, before any upstream is called."""
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"}, {"role": "tool", "content": "d"}]
    raw = orjson.dumps({"model": "test/claude", "max_tokens": 5, "messages": messages})[:-1] + b',"model":"test/oa"}'
    calls = len(stack.stub.received)
    async with aiohttp.ClientSession() as http, http.post(
            stack.url + "/v1/messages", data=raw, headers={"x-api-key": stack.key}) as resp:
        assert resp.status == 400, await resp.text()
        error = await resp.json()
    assert "messages[3].role" in error["error"]["message"]
    assert len(stack.stub.received) == calls


async def test_malformed_requests_are_named(stack: Stack) -> None:
    client = anthropic.AsyncAnthropic(base_url=stack.url, api_key=stack.key, max_retries=0)
    for messages, fix in ([{"role": "tool", "content": "x"}], "messages[0].role"),\
                         ([{"role": "user", "content": 5}], "messages[0].content"):
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="test/claude", max_tokens=5, messages=messages)  # type: ignore[arg-type]
        assert caught.value.body["type"] == "error"  # type: ignore[index]
        assert fix in caught.value.body["error"]["message"]  # type: ignore[index]
    # A role that is a list or an object once raised TypeError (a 500); raw bodies, since the
    # SDK's types refuse them.
    for messages, fix in ([{"role": "tool", "content": "x"}], "messages[0].role"), \
                         ([{"role": [], "content": "x"}], "messages[0].role"), \
                         ([{"role": {"a": 1}, "content": "x"}], "messages[0].role"), \
                         ([{"role": "user", "content": [{"type": "tool_result", "content": 5}]}],
                          "messages[0].content[0].content"):
        raw = orjson.dumps({"model": "test/claude", "max_tokens": 5, "messages": messages})
        async with aiohttp.ClientSession() as http, http.post(
                stack.url + "/v1/messages", data=raw, headers={"x-api-key": stack.key}) as resp:
            assert resp.status == 400, await resp.text()
            error = await resp.json()
        assert error["type"] == "error" and fix in error["error"]["message"], error


# -- count_tokens ----------------------------------------------------------------------------------

async def test_count_tokens_asks_an_anthropic_upstream(stack: Stack) -> None:
    stack.stub.script(Reply(200, b'{"input_tokens": 4242}'))
    status, headers, raw = await replay(stack, "test/claude", path="/v1/messages/count_tokens")
    assert status == 200, raw
    assert json.loads(raw) == {"input_tokens": 4242}
    assert headers["x-tollway-token-count"] == "upstream"
    got = stack.stub.received[-1]
    assert (got.path, got.query) == ("/an/v1/messages/count_tokens", "beta=true")
    assert got.body["model"] == "claude-up" and "max_tokens" not in got.body
    assert got.body["messages"] == CLAUDE_CODE["body"]["messages"]


async def test_count_tokens_estimates_for_other_formats(stack: Stack) -> None:
    received = len(stack.stub.received)
    client = anthropic.AsyncAnthropic(base_url=stack.url + "/api", api_key=stack.key, max_retries=0)
    messages: Any = [{"role": "user", "content": "How many tokens is this sentence, roughly?"}]
    raw = await client.messages.with_raw_response.count_tokens(model="test/oa", messages=messages)
    assert raw.headers["X-Tollway-Token-Count"] == "estimate"
    body = {"model": "test/oa", "messages": messages}
    assert (await raw.parse()).input_tokens == estimate_prompt_tokens(MessagesRequest.parse(body, counting=True).openai)
    assert len(stack.stub.received) == received  # no upstream call


async def test_count_tokens_relays_the_upstreams_verdict_on_a_bad_request(stack: Stack) -> None:
    error = {"type": "error", "error": {"type": "invalid_request_error", "message": "tools.0: bad schema"}}
    stack.stub.script(Reply(400, json.dumps(error).encode()))
    client = anthropic.AsyncAnthropic(base_url=stack.url, api_key=stack.key, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.count_tokens(model="test/claude", messages=[{"role": "user", "content": "x"}])
    assert "bad schema" in caught.value.body["error"]["message"]  # type: ignore[index]


# -- attribution -----------------------------------------------------------------------------------

async def test_an_explicit_title_wins_over_the_agent(stack: Stack) -> None:
    stack.stub.script(anthropic_reply())
    body = {"model": "test/claude", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": stack.key, "User-Agent": "claude-cli/2.1.328 (external, cli)",
               "X-Title": "My IDE", "X-Claude-Code-Session-Id": "run-7"}
    async with aiohttp.ClientSession() as http, http.post(stack.url + "/v1/messages", json=body,
                                                          headers=headers) as resp:
        assert resp.status == 200
        row = stack.generation(resp.headers["x-generation-id"])
    assert (row["app_title"], row["session_id"]) == ("My IDE", "run-7")
    assert "categories" not in json.loads(row["extra"] or "{}")  # the agent's category is not the app's


def test_agents_data() -> None:
    agents = load_agents()
    codex_ua = recorded("codex_0.169.0_request.json")["headers"]["User-Agent"]
    claude = agents.match(CLAUDE_CODE["headers"]["User-Agent"])
    codex = agents.match(codex_ua)
    assert claude is not None and codex is not None
    assert (claude.name, claude.category, codex.name, codex.category) == \
        ("Claude Code", "cli-agent", "Codex", "cli-agent")
    assert codex.session_id({"session-id": "s-1"}) == "s-1"
    assert agents.match("python-requests/2.32") is None and agents.match(None) is None
    with pytest.raises(ValueError, match=r"agents\[0\]"):
        parse_agents({"agents": [{"name": "X", "user_agent_prefixes": [], "category": None}]})
    with pytest.raises(ValueError, match="unknown category 'agent-framework'"):
        parse_agents({"agents": [{"name": "X", "user_agent_prefixes": ["x/"], "category": "agent-framework"}]})
