"""GET /api/v1/key and /api/v1/credits through the openrouter SDK, the admin API over
keys, and the ``tollway keys topup|usage`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openrouter import OpenRouter

from tests.limits.support import MODEL, MeteredStub, gateway, raw_config, request_cost_nano
from tests.support.servers import aiohttp_server, new_key
from tollway.metering import nano_to_usd

ADMIN = "sk-admin-test-secret"
BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 4, "messages": [{"role": "user", "content": "hi there"}]}


class Env:
    def __init__(self, url: str, database: str, raw: dict[str, Any], gw: Any) -> None:
        self.url, self.database, self.raw, self.gw = url, database, raw, gw

    def flush(self) -> None:
        assert self.gw.writer.flush(10), "ledger writer did not drain"

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"Bearer {ADMIN}"},
                             timeout=10, **kwargs)

    def chat(self, key: str) -> httpx.Response:
        return httpx.post(self.url + "/v1/chat/completions", json=BODY,
                          headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture
def env(database: str) -> Iterator[Env]:
    with aiohttp_server(MeteredStub().app()) as upstream:
        raw = raw_config(database, upstream, admin_key=ADMIN)
        with gateway(raw) as (url, gw):
            yield Env(url, database, raw, gw)
            assert gw.writer.flush(10)


# OpenRouter's /key still returns ``rate_limit`` and the SDK requires it, but the SDK marks its
# RateLimit class deprecated and warns on every parse: that warning is the SDK's, not ours.
@pytest.mark.filterwarnings("ignore:.*DEPRECATED.* This will be removed in a future release:DeprecationWarning")
def test_openrouter_sdk_parses_key_and_credits(env: Env) -> None:
    cost = request_cost_nano(BODY)
    _, key = new_key(env.database, label="team-a", limit_nanousd=10 * cost, limit_reset="weekly",
                          rpm=100)
    assert env.chat(key).status_code == 200
    env.flush()
    with OpenRouter(api_key=key, server_url=env.url + "/api/v1") as client:
        meta = client.api_keys.get_current_key_metadata().data
        credits = client.credits.get_credits().data
    assert meta.label == "team-a" and meta.limit_reset == "weekly"
    assert meta.limit == nano_to_usd(10 * cost)
    assert meta.usage == meta.usage_weekly == nano_to_usd(cost)  # from the ledger
    assert meta.limit_remaining == nano_to_usd(9 * cost)
    assert meta.is_management_key is False and meta.effective_budget is not None
    assert meta.effective_budget.scope == "key_limit" and meta.budgets[0].reset_interval == "weekly"
    assert credits.total_credits == nano_to_usd(10 * cost)
    assert credits.total_usage == nano_to_usd(cost)


def test_admin_api_creates_tops_up_and_revokes(env: Env) -> None:
    cost = request_cost_nano(BODY)
    created = env.admin("POST", "/api/v1/keys", json={
        "name": "bob", "limit": nano_to_usd(cost), "limit_reset": "monthly", "rpm": 50})
    assert created.status_code == 201, created.text
    key, key_id = created.json()["key"], created.json()["data"]["hash"]
    assert key.startswith("sk-tw-") and created.json()["data"]["limit_remaining"] == nano_to_usd(cost)

    assert env.chat(key).status_code == 200
    refused = env.chat(key)
    assert refused.status_code == 402
    assert refused.json()["error"]["type"] == "insufficient_credits"

    topped = env.admin("POST", f"/api/v1/keys/{key_id}/credits", json={"amount": nano_to_usd(2 * cost)})
    assert topped.status_code == 200, topped.text
    assert topped.json()["data"]["tollway"]["limit_nanousd"] == 3 * cost
    assert [env.chat(key).status_code for _ in range(3)] == [200, 200, 402]

    env.flush()
    usage = env.admin("GET", f"/api/v1/keys/{key_id}/usage").json()["data"]
    assert usage["totals"]["requests"] == 3 and usage["totals"]["cost_nanousd"] == 3 * cost
    assert usage["usage_monthly"] == nano_to_usd(3 * cost) and usage["limit_remaining"] == 0
    listed = env.admin("GET", "/api/v1/keys").json()["data"]
    assert key_id in [k["hash"] for k in listed]
    patched = env.admin("PATCH", f"/api/v1/keys/{key_id}", json={"label": "renamed", "rpm": None})
    assert patched.json()["data"]["label"] == "renamed" and patched.json()["data"]["tollway"]["rpm"] is None

    # Keys that are not admin keys may not manage keys.
    denied = httpx.get(env.url + "/api/v1/keys", headers={"Authorization": f"Bearer {key}"})
    assert denied.status_code == 403
    assert env.admin("DELETE", f"/api/v1/keys/{key_id}").json() == {"deleted": True}
    assert env.chat(key).status_code == 401
    assert env.admin("GET", "/api/v1/keys/key_missing").status_code == 404
    assert env.admin("POST", f"/api/v1/keys/{key_id}/credits", json={"amount": -1}).status_code == 400


def test_cli_topup_and_usage(env: Env, tmp_path: Path) -> None:
    cost = request_cost_nano(BODY)
    key_id, key = new_key(env.database, name="carol", limit_nanousd=cost)
    assert env.chat(key).status_code == 200
    assert env.chat(key).status_code == 402
    cfg = tmp_path / "tollway.yaml"
    cfg.write_text(yaml.safe_dump(env.raw))

    def run(*args: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "tollway", "keys", *args, "--config", str(cfg)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return data

    topped = run("topup", key_id, "--amount", str(nano_to_usd(cost)))
    assert topped["tollway"]["limit_nanousd"] == 2 * cost
    assert env.chat(key).status_code == 200
    assert env.chat(key).status_code == 402
    env.flush()
    usage = run("usage", "carol", "--json")
    assert usage["hash"] == key_id and usage["limit"] == nano_to_usd(2 * cost)
    assert usage["tollway"]["usage_nanousd"] == 2 * cost and usage["limit_remaining"] == 0
