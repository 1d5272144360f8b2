"""A gateway with traffic for the console tests: a stub OpenAI upstream, three keys, SDK traffic,
the public OpenRouter weekly rankings imported, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.analytics.helpers import openrouter_weeks, write_import_csv
from tests.support.servers import aiohttp_server, gateway_server, make_settings, new_key
from tests.support.stub_openai import StubOpenAI
from tollway.analytics.importer import import_usage
from tollway.catalog.index import build_catalog
from tollway.ledger.db import create_db_engine, migrate

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("TOLLWAY_ARTIFACTS", REPO_ROOT / "artifacts")) / "console"
CHROMIUM = os.environ.get("TOLLWAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

MODELS = [
    {"id": "test/echo", "author": "test", "author_country": "US", "open_weights": False,
     "architecture": {"kind": "dense", "total_params_b": "70"},
     "endpoints": [{"provider": "stub", "model": "echo-upstream",
                    "pricing": {"prompt": "1.25", "completion": "10"}},
                   {"provider": "flaky", "model": "echo-upstream",
                    "pricing": {"prompt": "1", "completion": "8"}}]},
    {"id": "open/moe", "author": "open", "author_country": "CN", "open_weights": True,
     "architecture": {"kind": "moe", "total_params_b": "230", "active_params_b": "10"},
     "endpoints": [{"provider": "stub", "model": "moe-upstream", "pricing": {"prompt": "0.3", "completion": "1.2"}}]},
]


@dataclass
class Stack:
    url: str
    app: Any
    admin_key: str
    alice: tuple[str, str]  # (key id, plain key)
    bob: tuple[str, str]
    generations: dict[str, list[str]] = field(default_factory=dict)  # key name -> generation ids

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway


def crossover_week(rows: list[dict[str, Any]], country_of: dict[str, str]) -> str:
    """The first week whose leading author country differs from the first week's, from the raw rows."""
    totals: dict[Any, dict[str, int]] = {}
    for r in rows:
        week = totals.setdefault(r["week"], {})
        country = country_of.get(r["slug"], "")
        week[country] = week.get(country, 0) + r["prompt_tokens"] + r["completion_tokens"]
    weeks = sorted(totals)
    leader = [max(totals[w].items(), key=lambda kv: kv[1])[0] for w in weeks]
    return next(w.isoformat() for w, lead in zip(weeks, leader, strict=True) if lead != leader[0])


def _traffic(stack: Stack) -> None:
    headers = {"X-Title": "console-app", "HTTP-Referer": "https://console-app.example",
               "X-OpenRouter-Categories": "programming-app"}
    alice = openai.OpenAI(base_url=stack.url + "/v1", api_key=stack.alice[1], max_retries=0, default_headers=headers)
    ids = []
    for i in range(6):
        reply = alice.chat.completions.create(
            model="test/echo" if i % 2 else "open/moe", max_tokens=5 + i,
            messages=[{"role": "user", "content": f"hello {i} " * (10 + 5 * i)}],
            extra_headers={"x-session-id": f"task-alice-{i % 2}"})
        ids.append(reply.id)
    stream = alice.chat.completions.create(model="test/echo", max_tokens=8, stream=True,
                                           stream_options={"include_usage": True},
                                           messages=[{"role": "user", "content": "stream please"}])
    for chunk in stream:
        ids.append(chunk.id)
    # The cheaper endpoint has a wrong upstream key: the gateway falls back to the other.
    fallback = alice.chat.completions.create(model="test/echo", max_tokens=4,
                                             messages=[{"role": "user", "content": "fall back"}],
                                             extra_body={"provider": {"order": ["flaky", "stub"]}})
    ids.append(fallback.id)
    stack.generations["alice"] = list(dict.fromkeys(ids))
    bob = anthropic.Anthropic(base_url=stack.url, api_key=stack.bob[1], max_retries=0)
    stack.generations["bob"] = [
        bob.messages.create(model="open/moe", max_tokens=6 + i, messages=[{"role": "user", "content": f"bob {i}"}],
                            extra_headers={"x-session-id": "task-bob"}).id
        for i in range(4)]
    assert stack.gateway.writer.flush(10), "ledger writer did not drain"


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    upstream = StubOpenAI()
    tmp = tmp_path_factory.mktemp("console")
    database = f"sqlite:///{tmp / 'ledger.db'}"
    admin_key = "sk-tw-admin-" + secrets.token_hex(12)
    with aiohttp_server(upstream.app()) as upstream_url:
        providers = [{"name": "stub", "kind": "openai", "base_url": upstream_url + "/v1",
                      "api_key": "sk-upstream-secret"},
                     {"name": "flaky", "kind": "openai", "base_url": upstream_url + "/v1", "api_key": "sk-wrong"}]
        settings = make_settings(database, upstream_url, models=MODELS, providers=providers,
                                 extra={"admin_key": admin_key, "console": {"public_rankings": True}})
        engine = create_db_engine(database)
        migrate(engine)
        rows = openrouter_weeks()
        result = import_usage(engine, write_import_csv(rows, tmp / "weekly.csv"), period="week",
                              catalog=build_catalog(settings))
        assert result.rows == len(rows)
        engine.dispose()
        alice, bob = new_key(database, "alice"), new_key(database, "bob")
        with gateway_server(settings) as (url, app):
            stack = Stack(url=url, app=app, admin_key=admin_key, alice=alice, bob=bob)
            _traffic(stack)
            yield stack


def country_by_slug() -> dict[str, str]:
    import csv

    flat = REPO_ROOT.parent / "shared" / "data" / "openrouter_rankings" / \
        "openrouter_top_models_weekly_2025-11_to_2026-05.csv"
    with flat.open() as fh:
        return {r["slug"]: r["author_country_iso2"] for r in csv.DictReader(fh)}


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@dataclass
class Visit:
    """A browser context on the console that records JS errors and off-origin requests."""

    page: Any
    context: Any
    errors: list[str]
    offsite: list[str]


@pytest.fixture
def visit(browser: Any, stack: Stack) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    offsite: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(stack.url + "/") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield Visit(page, context, errors, offsite)
    context.close()
