"""Agent clients recognised from their request headers, read once from ``data/agents.json``.

Coding agents rarely send ``X-Title`` or ``HTTP-Referer``, but they do say who they are in
``User-Agent`` and carry a per-run session id in a header of their own.  Which prefix means
which agent, and which header holds its session, is data: supporting a new agent is a row
in the JSON file, not a code path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson

from tollway.ledger.apps import CATEGORIES


@dataclass(frozen=True, slots=True)
class AgentSignature:
    """One agent: how to recognise it, what to call it, where its session id is."""

    name: str  # the app name attributed in the ledger ("Claude Code")
    user_agent_prefixes: tuple[str, ...]  # lower-case
    session_headers: tuple[str, ...]  # lower-case header names, first present wins
    category: str | None  # default app category ("cli-agent"); None for a library such as an SDK

    @property
    def categories(self) -> tuple[str, ...]:
        """The categories recorded for the agent's requests when they declare none."""
        return (self.category,) if self.category else ()

    def session_id(self, headers: Mapping[str, str]) -> str | None:
        for name in self.session_headers:
            value = headers.get(name)
            if value:
                return value
        return None


@dataclass(frozen=True, slots=True)
class AgentDirectory:
    agents: tuple[AgentSignature, ...]

    def match(self, user_agent: str | None) -> AgentSignature | None:
        """The agent whose User-Agent prefix ``user_agent`` starts with, if any."""
        if not user_agent:
            return None
        lowered = user_agent.lower()
        for agent in self.agents:
            if lowered.startswith(agent.user_agent_prefixes):
                return agent
        return None


def parse_agents(doc: Any) -> AgentDirectory:
    """Validate the agents document; a malformed row names itself."""
    rows = doc.get("agents") if isinstance(doc, dict) else None
    if not isinstance(rows, list):
        raise ValueError("agents.json: expected {\"agents\": [...]}")
    agents = []
    for i, row in enumerate(rows):
        try:
            agents.append(AgentSignature(
                name=_text(row["name"]),
                user_agent_prefixes=tuple(_text(p).lower() for p in row["user_agent_prefixes"]),
                session_headers=tuple(_text(h).lower() for h in row.get("session_headers", ())),
                category=_category(row["category"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"agents.json: agents[{i}] needs name, user_agent_prefixes (non-empty strings), "
                             f"session_headers and category (one of {', '.join(CATEGORIES)}, or null): "
                             f"{exc}") from None
        if not agents[-1].user_agent_prefixes:
            raise ValueError(f"agents.json: agents[{i}].user_agent_prefixes is empty")
    return AgentDirectory(tuple(agents))


def load_agents() -> AgentDirectory:
    """The packaged agent list (called once, when the gateway is built)."""
    raw = (resources.files("tollway.catalog") / "data" / "agents.json").read_bytes()
    return parse_agents(orjson.loads(raw))


def _category(value: Any) -> str | None:
    if value is None:
        return None
    if value not in CATEGORIES:
        raise ValueError(f"unknown category {value!r}")
    return str(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value
