"""Configuration problems as a client and an operator see them: a model with no active
provider is a 404 the SDKs do not retry; a provider nobody listens for is a 502 naming the
cause, logged; both are counted in /metrics with their model and provider."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from tests.support.servers import free_port, gateway_server, make_settings, new_key
from tests.support.stub_openai import StubOpenAI
from tollway.ledger import schema

UNSET = "TOLLWAY_TEST_KEY_THAT_IS_NEVER_SET"


@pytest.fixture
def gateway(stub: tuple[StubOpenAI, str], database: str,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, Any]]:
    monkeypatch.delenv(UNSET, raising=False)
    _, upstream_url = stub
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    settings = make_settings(database, upstream_url, providers=[
        {"name": "stub", "kind": "openai", "base_url": upstream_url + "/v1", "api_key": "sk-upstream-secret"},
        {"name": "keyless", "kind": "openai", "base_url": upstream_url + "/v1", "api_key": "${" + UNSET + "}"},
        {"name": "closed", "kind": "openai", "base_url": closed, "api_key": "sk-closed-secret"},
    ], models=[
        {"id": "test/inactive", "endpoints": [{"provider": "keyless", "model": "echo"}]},
        {"id": "test/refused", "endpoints": [{"provider": "closed", "model": "echo"}]},
    ])
    _, key = new_key(database)
    with gateway_server(settings) as (url, app):
        yield url, key, app.state.gateway


def _error_rows(gw: Any) -> list[dict[str, Any]]:
    assert gw.writer.flush(10)
    with gw.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(schema.generations))]


def test_no_active_provider_is_a_404_naming_the_variable_and_not_retried(gateway: tuple[str, str, Any]) -> None:
    url, key, gw = gateway
    client = openai.OpenAI(base_url=url + "/v1", api_key=key)  # the SDK's default retries (2)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="test/inactive", messages=[{"role": "user", "content": "hi"}])
    assert UNSET in info.value.message and "no endpoints found" in info.value.message
    rows = _error_rows(gw)
    assert [(r["model"], r["http_status"]) for r in rows] == [("test/inactive", 404)]  # one call, one row
    metrics = httpx.get(url + "/metrics").text
    assert 'tollway_errors_total{model="test/inactive",provider="",status="404"} 1.0' in metrics


def test_connect_failure_names_the_cause_and_logs_it(gateway: tuple[str, str, Any],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    url, key, _ = gateway
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    with caplog.at_level(logging.WARNING, logger="tollway.upstream"), \
            pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="test/refused", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 502
    assert "could not connect to provider closed: connection refused by 127.0.0.1:" in info.value.message
    logged = [r.getMessage() for r in caplog.records if r.name == "tollway.upstream"]
    assert any("connection refused" in m and "closed" in m for m in logged), logged
    assert not any("sk-closed-secret" in m for m in logged)
    metrics = httpx.get(url + "/metrics").text
    assert 'tollway_errors_total{model="test/refused",provider="closed",status="502"} 1.0' in metrics
