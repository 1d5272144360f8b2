"""Claude Code and Codex CLI, the pinned npm releases, run non-interactively through tollway
to stub upstreams of each wire format: one-turn answers, a tool loop the agent really runs
in a scratch directory, exact metering and per-run attribution checked in the ledger."""

from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.agents.conftest import AgentStack, client_binary, run_client
from tests.agents.stub import ToolCall

QUIET = {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1",
         "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1"}


def claude(stack: AgentStack, model: str, prompt: str, home: Path, cwd: Path) -> dict[str, Any]:
    env = {"HOME": str(home), "ANTHROPIC_BASE_URL": stack.url, "ANTHROPIC_API_KEY": stack.key,
           "ANTHROPIC_MODEL": model, "ANTHROPIC_SMALL_FAST_MODEL": model,
           "ANTHROPIC_DEFAULT_HAIKU_MODEL": model, **QUIET}
    done = run_client([str(client_binary("claude")), "-p", prompt, "--output-format", "json",
                       "--allowedTools", "Read,Bash"], env, cwd)
    assert done.returncode == 0, f"claude exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def codex(stack: AgentStack, model: str, prompt: str, home: Path, cwd: Path) -> tuple[str, str]:
    """(final message, session id) of ``codex exec``."""
    codex_home = home / "codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(f'''
model = "{model}"
model_provider = "tollway"

[model_providers.tollway]
name = "tollway"
base_url = "{stack.url}/v1"
env_key = "TOLLWAY_API_KEY"
wire_api = "responses"

[analytics]
enabled = false
''')
    last = home / "last-message.txt"
    env = {"HOME": str(home), "CODEX_HOME": str(codex_home), "TOLLWAY_API_KEY": stack.key}
    done = run_client([str(client_binary("codex")), "exec", "--skip-git-repo-check", "--sandbox", "read-only",
                       "--output-last-message", str(last), prompt], env, cwd)
    assert done.returncode == 0, f"codex exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-3000:]}"
    session = re.search(r"session id: (\S+)", done.stderr + done.stdout)
    assert session is not None, done.stderr[-2000:]
    return last.read_text().strip(), session.group(1)


def assert_metered(stack: AgentStack, app: str, session_id: str, api: str) -> list[dict[str, Any]]:
    """Every request the stub served is one successful ledger row with exactly its usage,
    all of them one task (the agent's session) of the named app."""
    rows = stack.rows()
    served = stack.stub.served
    assert served, "the agent sent no request upstream"
    assert len(rows) == len(served), (rows, served)
    assert [r["status"] for r in rows] == ["success"] * len(rows)
    assert not any(r["estimated"] for r in rows)
    assert sum(r["prompt_tokens"] for r in rows) == sum(s.input_tokens for s in served)
    assert sum(r["completion_tokens"] for r in rows) == sum(s.output_tokens for s in served)
    assert {(r["app_title"], r["session_id"], r["api"]) for r in rows} == {(app, session_id, api)}
    assert stack.task_requests(session_id) == len(rows)  # one task in `tollway report tasks`
    # 3 and 15 USD per million tokens = 3000 and 15000 nano-USD per token
    assert sum(r["cost_nanousd"] for r in rows) == \
        sum(3000 * s.input_tokens + 15000 * s.output_tokens for s in served)
    return rows


def _extra(row: dict[str, Any]) -> dict[str, Any]:
    extra = row["extra"]
    parsed: dict[str, Any] = json.loads(extra) if isinstance(extra, str) else extra or {}
    return parsed


def secret_file(scratch: Path) -> str:
    secret = "tollway-" + secrets.token_hex(4)
    (scratch / "note.txt").write_text(f"The secret word is {secret}.\n")
    return secret


# -- Claude Code -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["test/claude", "test/oa"])
def test_claude_code_one_turn(stack: AgentStack, scratch: Path, tmp_path: Path, model: str) -> None:
    stack.stub.reset(answer="Hello from the stub, Claude.")
    out = claude(stack, model, "Say hello.", tmp_path / "home", scratch)
    assert out["is_error"] is False
    assert out["result"] == "Hello from the stub, Claude."
    rows = assert_metered(stack, "Claude Code", out["session_id"], "messages")
    first_path, first_headers, first_body = stack.stub.requests[0]
    if model == "test/claude":  # passed through: beta query, beta headers and body kept
        assert first_path == "/an/v1/messages"
        assert "context-management-2025-06-27" in first_headers["anthropic-beta"]
        assert first_body["context_management"] and first_body["output_config"]["effort"]
        assert [m["role"] for m in first_body["messages"]].count("system") >= 1
        assert "dropped" not in _extra(rows[0])  # nothing left out on a pass-through
    else:  # translated: the mid-conversation system message kept in place, effort mapped
        assert first_path == "/oa/v1/chat/completions"
        roles = [m["role"] for m in first_body["messages"]]
        assert roles[0] == "system" and "system" in roles[2:], roles
        assert first_body["reasoning"]["effort"] in {"low", "medium", "high", "xhigh"}
        assert "context_management" not in first_body
        assert "context_management" in _extra(rows[0])["dropped"]
    assert _extra(rows[0])["categories"] == ["cli-agent"]


@pytest.mark.parametrize("model", ["test/claude", "test/oa"])
def test_claude_code_tool_loop(stack: AgentStack, scratch: Path, tmp_path: Path, model: str) -> None:
    secret = secret_file(scratch)
    stack.stub.reset(tool_call=ToolCall("Read", {"file_path": str(scratch / "note.txt")}), secret=secret)
    out = claude(stack, model, "What is the secret word in note.txt?", tmp_path / "home", scratch)
    assert out["is_error"] is False
    assert out["result"] == f"Done: found {secret}."  # the stub saw the file's text in the tool result
    assert [s.tool for s in stack.stub.served] == ["Read", None]
    assert out["num_turns"] == 2
    assert_metered(stack, "Claude Code", out["session_id"], "messages")


# -- Codex --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["test/oa", "test/native", "test/claude"])
def test_codex_one_turn(stack: AgentStack, scratch: Path, tmp_path: Path, model: str) -> None:
    stack.stub.reset(answer="Hello from the stub, Codex.")
    final, session = codex(stack, model, "Say hello.", tmp_path / "home", scratch)
    assert final == "Hello from the stub, Codex."
    assert_metered(stack, "Codex", session, "responses")
    path = stack.stub.requests[0][0]
    assert path == {"test/oa": "/oa/v1/chat/completions", "test/native": "/rs/v1/responses",
                    "test/claude": "/an/v1/messages"}[model]


@pytest.mark.parametrize("model", ["test/oa", "test/native", "test/claude"])
def test_codex_tool_loop(stack: AgentStack, scratch: Path, tmp_path: Path, model: str) -> None:
    secret = secret_file(scratch)
    stack.stub.reset(tool_call=ToolCall("exec_command", {"cmd": "cat note.txt"}), secret=secret)
    final, session = codex(stack, model, "What is the secret word in note.txt?", tmp_path / "home", scratch)
    assert final == f"Done: found {secret}."
    assert [s.tool for s in stack.stub.served] == ["exec_command", None]
    assert_metered(stack, "Codex", session, "responses")
