"""Model-list endpoints over a real socket, read by the official ``openrouter`` and ``openai`` SDKs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn
from openai import OpenAI
from openrouter import OpenRouter
from openrouter.errors import NotFoundResponseError
from starlette.applications import Starlette
from starlette.routing import Route

from tollway.api.models import list_models_openai, list_models_openrouter, model_endpoints
from tollway.catalog import Catalog, build_catalog
from tollway.catalog.openrouter_schema import EndpointHealth, per_token, render_models
from tollway.config import parse_settings

ENV = {"MINIMAX_API_KEY": "k1", "DEEPINFRA_API_KEY": "k2"}


def _catalog(tmp_path: Path) -> Catalog:
    return build_catalog(parse_settings({}, source=str(tmp_path / "tollway.yaml"), env={}), env=ENV)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Catalog]]:
    catalog = _catalog(tmp_path)
    health = {
        ("minimax/minimax-m2.5", "minimax"): EndpointHealth(
            uptime_last_30m=99.5, latency_last_30m={"p50": 410, "p75": 500, "p90": 700, "p99": 1200}
        )
    }
    app = Starlette(
        routes=[
            Route("/api/v1/models", list_models_openrouter),
            Route("/v1/models", list_models_openai),
            Route("/api/v1/models/{author}/{slug}/endpoints", model_endpoints),
        ]
    )
    app.state.gateway = SimpleNamespace(catalog=catalog, endpoint_health=health)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", catalog
    finally:
        srv.should_exit = True
        thread.join(5)


def test_openrouter_sdk_lists_active_models(server: tuple[str, Catalog]) -> None:
    url, catalog = server
    client = OpenRouter(api_key="unused", server_url=f"{url}/api/v1")
    listed = client.models.list().result  # a pager; .result is the parsed ModelsListResponse
    ids = {m.id for m in listed.data}
    assert "minimax/minimax-m2.5" in ids and "deepseek/deepseek-v3.2" in ids  # deepinfra hosts it
    assert "anthropic/claude-opus-4.6" not in ids  # no anthropic key
    assert listed.total_count == len(listed.data) == len(catalog.listed_models())
    m25 = next(m for m in listed.data if m.id == "minimax/minimax-m2.5")
    # priced at the cheapest active endpoint: DeepInfra's $0.15/$1.15 beats MiniMax's $0.30/$1.20
    assert (m25.pricing.prompt, m25.pricing.completion) == ("0.00000015", "0.00000115")
    assert m25.context_length == 204800 and m25.links.details.endswith("/minimax/minimax-m2.5/endpoints")


def test_all_query_and_tollway_extension(server: tuple[str, Catalog]) -> None:
    url, catalog = server
    body = httpx.get(f"{url}/api/v1/models", params={"all": "true"}).json()
    assert body["total_count"] == len(catalog.models) >= 60
    opus = next(m for m in body["data"] if m["id"] == "anthropic/claude-opus-4.6")
    assert opus["pricing"]["prompt"] == "0.000005" and opus["tollway"]["active"] is False
    kimi = next(m for m in body["data"] if m["id"] == "moonshotai/kimi-k2.5")
    assert kimi["tollway"]["author_country"] == "CN" and kimi["tollway"]["open_weights"] is True
    assert kimi["tollway"]["architecture"]["kind"] == "moe"


def test_openrouter_sdk_lists_endpoints_with_health(server: tuple[str, Catalog]) -> None:
    url, _ = server
    client = OpenRouter(api_key="unused", server_url=f"{url}/api/v1")
    result = client.endpoints.list(author="minimax", slug="minimax-m2.5")
    by_tag = {e.tag: e for e in result.data.endpoints}
    assert set(by_tag) == {"minimax", "deepinfra"}  # only active endpoints by default
    maker = by_tag["minimax"]
    assert maker.pricing.prompt == "0.0000003" and maker.pricing.input_cache_read == "0.00000003"
    assert maker.uptime_last_30m == 99.5 and maker.latency_last_30m is not None
    assert maker.latency_last_30m.p50 == 410
    assert by_tag["deepinfra"].uptime_last_30m is None and by_tag["deepinfra"].throughput_last_30m is None
    raw = httpx.get(f"{url}/api/v1/models/minimax/minimax-m2.5/endpoints", params={"all": "1"}).json()
    hosts = {e["tollway"]["provider"]: e["tollway"]["hosting_country"] for e in raw["data"]["endpoints"]}
    assert hosts["minimax"] == "CN" and hosts["siliconflow"] == "CN" and hosts["together"] == "US"
    with pytest.raises(NotFoundResponseError):
        client.endpoints.list(author="anthropic", slug="claude-opus-4.6")  # exists, but inactive
    assert httpx.get(f"{url}/api/v1/models/no/such/endpoints").status_code == 404


def test_openai_sdk_lists_models(server: tuple[str, Catalog]) -> None:
    url, catalog = server
    client = OpenAI(api_key="unused", base_url=f"{url}/v1")
    models = list(client.models.list())
    assert {m.id for m in models} == {m.id for m in catalog.listed_models()}
    m25 = next(m for m in models if m.id == "minimax/minimax-m2.5")
    assert m25.object == "model" and m25.owned_by == "minimax" and m25.created > 1_700_000_000
    raw = httpx.get(f"{url}/v1/models").json()
    assert raw["object"] == "list" and set(raw["data"][0]) == {"id", "object", "created", "owned_by"}


def test_per_token_strings() -> None:
    from decimal import Decimal

    assert per_token(Decimal(5)) == "0.000005"
    assert per_token(Decimal("0.027")) == "0.000000027"
    assert per_token(Decimal(0)) == "0"
    assert per_token(None) is None


def test_render_is_pure_and_sdk_valid(tmp_path: Path) -> None:
    from openrouter.components import ModelsListResponse

    body: dict[str, Any] = render_models(_catalog(tmp_path), include_all=True)
    parsed = ModelsListResponse.model_validate(body)
    assert len(parsed.data) == body["total_count"]
