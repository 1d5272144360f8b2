"""Shared fixtures: a stub OpenAI upstream, both ledgers, and a running gateway."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import aiohttp_server, gateway_server, make_settings, new_key, postgres_database
from tests.support.stub_openai import StubOpenAI

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture
def stub() -> Iterator[tuple[StubOpenAI, str]]:
    upstream = StubOpenAI()
    with aiohttp_server(upstream.app()) as url:
        yield upstream, url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that uses it runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        with postgres_database() as url:
            yield url


@dataclass
class Running:
    url: str
    app: Any
    key: str
    key_id: str
    database: str
    upstream: StubOpenAI

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def flush(self) -> None:
        assert self.gateway.writer.flush(10), "ledger writer did not drain"


@pytest.fixture
def running(stub: tuple[StubOpenAI, str], database: str) -> Iterator[Running]:
    upstream, upstream_url = stub
    settings = make_settings(database, upstream_url)
    key_id, key = new_key(database)
    with gateway_server(settings) as (url, app):
        yield Running(url=url, app=app, key=key, key_id=key_id, database=database, upstream=upstream)
