"""The right words: an open circuit on the only allowed provider is a 503 with Retry-After,
a failed fallback chain is recorded under the model it last tried, rejected requests stay
out of the rankings, ``usage summary`` counts charged generations that were cut short, and
chat completions carry ``message.refusal``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from click.testing import CliRunner

from tests.routing.conftest import MODEL, endpoint, fleet
from tests.routing.stubs import Stub
from tests.support.servers import new_key
from tollway.cli import main as cli

OTHER = "other/model"


def test_an_open_circuit_on_the_only_allowed_provider_is_503_with_retry_after(tmp_path: Path) -> None:
    down, spare = Stub("down", plan=lambda _n: "500"), Stub("spare")
    only_down = {"order": ["down"], "allow_fallbacks": False}
    with fleet(tmp_path, [down, spare], routing={"breaker_failures": 3, "breaker_cooldown_s": 40}) as f:
        for _ in range(3):
            with pytest.raises(openai.APIStatusError) as failed:
                f.ask(only_down)
            assert failed.value.status_code == 502
        assert f.gateway.health.breaker_state((MODEL, "down")) == "open"
        with pytest.raises(openai.APIStatusError) as info:
            f.ask(only_down)
    assert info.value.status_code == 503
    assert info.value.response.headers["retry-after"] == "40"
    assert "circuit open" in info.value.message and "down" in info.value.message
    assert down.count() == 3 and spare.count() == 0


def test_a_failed_fallback_chain_records_the_last_model_beside_the_last_provider(tmp_path: Path) -> None:
    first, second = Stub("first", plan=lambda _n: "500"), Stub("second", plan=lambda _n: "503")
    models = [{"id": OTHER, "author": "other", "endpoints": [endpoint("second", 1)]}]
    with fleet(tmp_path, [first, second], endpoints=[endpoint("first", 1)], models=models) as f:
        with pytest.raises(openai.APIStatusError):
            f.ask(extra_body={"models": [MODEL, OTHER]})
        rows = f.generations()
    assert len(rows) == 1
    assert [(a["model"], a["provider"]) for a in rows[0]["attempts"]] == [(MODEL, "first"), (OTHER, "second")]
    assert (rows[0]["model"], rows[0]["provider"]) == (OTHER, "second")


def _ranked(url: str, admin: str, by: str) -> set[str]:
    resp = httpx.get(url + "/api/v1/analytics/rankings", params={"by": by, "period": "day"},
                     headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    return {str(r["key"]) for r in resp.json()["rows"]}


def test_rejected_requests_are_not_ranked(tmp_path: Path) -> None:
    with fleet(tmp_path, [Stub("real")], key_kwargs={"allowed_models": [MODEL]}) as f:
        f.ask()  # one real generation
        for bad in ("ghost/model-that-does-not-exist", OTHER):
            with pytest.raises(openai.APIStatusError) as info:
                f.ask(model=bad)
            assert info.value.status_code in (403, 404)
        rows = f.generations()
        _, admin = new_key(f.database, name="ops", is_admin=True)
        models, authors, origins = (_ranked(f.url, admin, by) for by in ("model", "author", "origin"))
    assert {r["status"] for r in rows} == {"success", "error"} and len(rows) == 3  # all kept in the ledger
    assert models == {MODEL}, models
    assert "ghost" not in authors and "other" not in authors and authors
    assert all("ghost" not in o and "other" not in o for o in origins)


def test_usage_summary_counts_charged_generations_cut_short(tmp_path: Path) -> None:
    dropper, fine = Stub("dropper", plan=lambda _n: "drop", chunks=6), Stub("fine")
    with fleet(tmp_path, [dropper, fine]) as f:
        f.ask({"order": ["fine"]})
        with pytest.raises(openai.APIError):
            list(f.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                    stream=True, extra_body={"provider": {"order": ["dropper"]}}))
        rows = f.generations()
    charged = [r for r in rows if r["cost_nanousd"] > 0]
    assert {r["status"] for r in charged} == {"success", "error"}
    config = tmp_path / "tollway.yaml"
    config.write_text(yaml.safe_dump({"database": f.database, "catalog": False}))
    result = CliRunner().invoke(cli, ["usage", "summary", "--config", str(config), "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    totals: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    assert totals["requests"] == 2
    assert totals["cost_nanousd"] == sum(r["cost_nanousd"] for r in charged)
    assert totals["completion_tokens"] == sum(r["completion_tokens"] for r in charged)


def test_chat_completions_carry_message_refusal(tmp_path: Path) -> None:
    with fleet(tmp_path, [Stub("plain")]) as f:  # the stub, like many vendors, omits refusal
        resp = httpx.post(f.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {f.key}"},
                          json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    message = resp.json()["choices"][0]["message"]
    assert "refusal" in message and message["refusal"] is None
