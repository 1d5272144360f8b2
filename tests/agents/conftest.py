"""The agent acceptance suite: real agent CLIs (npm, pinned in clients/package.json) and the
OpenAI Agents SDK, through a real gateway, to stub upstreams of each wire format."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.agents.stub import AgentStub, running_agent_stub
from tests.support.servers import gateway_server, new_key, postgres_database
from tollway.config import parse_settings
from tollway.ledger.db import create_db_engine

CLIENTS = Path(__file__).resolve().parent / "clients"
BIN = CLIENTS / "node_modules" / ".bin"
PRICING = {"prompt": "3", "completion": "15"}
# tollway model id -> the stub provider that serves it (one per wire format)
MODELS = {"test/claude": "stub-anthropic", "test/oa": "stub-openai", "test/native": "stub-responses"}


def client_binary(name: str) -> Path:
    """The pinned CLI; missing is a failure, never a skip (CI installs it: .ci/run)."""
    path = BIN / name
    assert path.exists(), f"{path} is missing: run `npm ci` in {CLIENTS} (.ci/run does)"
    return path


@dataclass
class AgentStack:
    url: str
    app: Any
    stub: AgentStub
    key: str
    database: str

    def rows(self) -> list[dict[str, Any]]:
        """Every ledger row written since the last :meth:`AgentStub.reset`-time mark."""
        assert self.app.state.gateway.writer.flush(10), "ledger writer did not drain"
        engine = create_db_engine(self.database)
        try:
            with engine.connect() as conn:
                result = conn.exec_driver_sql(
                    "SELECT id, model, provider, api, app, app_title, session_id, prompt_tokens, "
                    "completion_tokens, cost_nanousd, status, estimated, extra FROM generations ORDER BY created_at")
                return [dict(r._mapping) for r in result]
        finally:
            engine.dispose()

    def task_requests(self, session_id: str) -> int:
        """Requests the tasks rollup (what ``tollway report tasks`` reads) counts for a session."""
        engine = create_db_engine(self.database)
        try:
            with engine.connect() as conn:
                value = conn.exec_driver_sql("SELECT sum(requests) FROM usage_sessions WHERE session_id = %(s)s",
                                             {"s": session_id}).scalar()
                return int(value or 0)
        finally:
            engine.dispose()

    def clear_ledger(self) -> None:
        assert self.app.state.gateway.writer.flush(10), "ledger writer did not drain"
        engine = create_db_engine(self.database)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM generations")
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def agent_stack() -> Iterator[AgentStack]:
    with running_agent_stub() as (stub, stub_url), postgres_database() as database:
        _key_id, key = new_key(database, name="agents")
        raw = {
            "database": database, "catalog": False,
            "server": {"key_cache_ttl_s": 0}, "ledger": {"flush_interval_ms": 5},
            "providers": [
                {"name": "stub-anthropic", "kind": "anthropic", "base_url": f"{stub_url}/an", "api_key": "sk-an"},
                {"name": "stub-openai", "kind": "openai", "base_url": f"{stub_url}/oa/v1", "api_key": "sk-oa"},
                {"name": "stub-responses", "kind": "openai", "base_url": f"{stub_url}/rs/v1", "api_key": "sk-rs",
                 "responses": "native"},
            ],
            "models": [{"id": model, "endpoints": [{"provider": provider, "model": "up-" + model[5:],
                                                    "pricing": PRICING}]}
                       for model, provider in MODELS.items()],
        }
        with gateway_server(parse_settings(raw, source="test")) as (url, app):
            yield AgentStack(url=url, app=app, stub=stub, key=key, database=database)


@pytest.fixture
def stack(agent_stack: AgentStack) -> AgentStack:
    agent_stack.stub.reset()
    agent_stack.clear_ledger()
    return agent_stack


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A working directory for the agent, with a file for it to read."""
    work = tmp_path / "work"
    work.mkdir()
    return work


def run_client(argv: list[str], env: dict[str, str], cwd: Path,
               timeout: float = 180) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "TERM")}
    base.setdefault("PATH", os.defpath)
    return subprocess.run(argv, env={**base, **env}, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, check=False)

