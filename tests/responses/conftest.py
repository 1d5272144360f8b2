"""A gateway in front of the three-format stub (tests.adapters.harness) plus a
Responses-native provider, on a fresh PostgreSQL ledger, with two keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.adapters.harness import PRICING, Stack, Stub, settings_for
from tests.support.servers import aiohttp_server, gateway_server, new_key, postgres_database
from tollway.config import parse_settings


@dataclass
class ResponsesStack(Stack):
    other_key: str = ""

    def client(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key or self.key, max_retries=0)


def responses_settings(stub_url: str, database: str) -> dict[str, Any]:
    raw = settings_for(stub_url, database)
    raw["providers"].append({"name": "stub-native", "kind": "openai", "responses": "native",
                             "base_url": f"{stub_url}/na/v1", "api_key": "sk-na"})
    raw["models"].append({"id": "test/native", "endpoints": [
        {"provider": "stub-native", "model": "gpt-native", "pricing": PRICING}]})
    return raw


@pytest.fixture(scope="module")
def stack() -> Iterator[ResponsesStack]:
    stub = Stub()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", stub.handle)
    with aiohttp_server(app) as stub_url, postgres_database() as database:
        key_id, key = new_key(database, name="alice")
        _other_id, other = new_key(database, name="bob")
        settings = parse_settings(responses_settings(stub_url, database), source="test")
        with gateway_server(settings) as (url, gateway_app):
            yield ResponsesStack(url=url, app=gateway_app, stub=stub, key=key, key_id=key_id,
                                 database=database, other_key=other)
