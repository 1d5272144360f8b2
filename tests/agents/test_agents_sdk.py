"""The OpenAI Agents SDK (``openai-agents``, pinned in the test extra): an Agent with a
function tool, its model an ``OpenAIResponsesModel`` pointed at tollway's ``/v1/responses``."""

from __future__ import annotations

import secrets

import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from openai import AsyncOpenAI

from tests.agents.conftest import AgentStack
from tests.agents.stub import ToolCall
from tests.agents.test_cli_agents import assert_metered


@pytest.mark.parametrize("model", ["test/oa", "test/native", "test/claude"])
async def test_agent_with_a_function_tool(stack: AgentStack, model: str) -> None:
    set_tracing_disabled(True)  # the SDK would otherwise export traces to OpenAI
    secret = "tollway-" + secrets.token_hex(4)
    calls: list[str] = []

    @function_tool
    def read_note(name: str) -> str:
        """Read a note by name."""
        calls.append(name)
        return f"The note {name} says: {secret}"

    stack.stub.reset(tool_call=ToolCall("read_note", {"name": "todo"}), secret=secret)
    session = "sdk-run-" + secrets.token_hex(4)
    client = AsyncOpenAI(base_url=stack.url + "/v1", api_key=stack.key, max_retries=0)
    agent = Agent(name="Reader", instructions="Answer from the notes.", tools=[read_note],
                  model=OpenAIResponsesModel(model=model, openai_client=client),
                  model_settings=ModelSettings(extra_headers={"X-Session-Id": session}))
    result = await Runner.run(agent, "What does the todo note say?")
    assert calls == ["todo"]
    assert result.final_output == f"Done: found {secret}."
    assert [s.tool for s in stack.stub.served] == ["read_note", None]
    rows = assert_metered(stack, "OpenAI Agents SDK", session, "responses")
    assert {r["model"] for r in rows} == {model}
