"""Hostile values in every field a generation record takes from outside are recorded
bounded, and the generations after them are still recorded (both ledgers, over HTTP).

Before the bounds, any one of these killed the ledger writer: every later generation
was answered and never recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select

from tests.ledger.hostile_upstream import Answer, HostileUpstream
from tests.support.servers import aiohttp_server, gateway_server, make_settings, new_key
from tollway.ledger import schema
from tollway.ledger.bounds import MAX_COST_NANOUSD, MAX_TOKENS, TEXT_LIMITS
from tollway.ledger.rollups import usage_daily_model


class Hostile:
    def __init__(self, url: str, app: Any, key: str, key_id: str, upstream: HostileUpstream) -> None:
        self.url, self.app, self.key, self.key_id, self.upstream = url, app, key, key_id, upstream
        self.client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)

    def rows(self) -> dict[str, dict[str, Any]]:
        gateway = self.app.state.gateway
        assert gateway.writer.flush(20), "ledger writer did not drain"
        with gateway.engine.connect() as conn:
            return {r.id: dict(r._mapping) for r in conn.execute(select(schema.generations))}

    def requests_in_rollups(self) -> int:
        with self.app.state.gateway.engine.connect() as conn:
            return sum(r.requests + r.errors for r in conn.execute(select(usage_daily_model)))

    def chat(self, **kwargs: Any) -> Any:
        return self.client.chat.completions.create(
            model="test/echo", messages=[{"role": "user", "content": "hello"}], **kwargs)


@pytest.fixture
def hostile(database: str, tmp_path: Any) -> Iterator[Hostile]:
    upstream = HostileUpstream()
    with aiohttp_server(upstream.app()) as upstream_url:
        settings = make_settings(database, upstream_url,
                                 extra={"ledger": {"flush_interval_ms": 5, "journal_dir": str(tmp_path / "j")}})
        key_id, key = new_key(database)
        with gateway_server(settings) as (url, app):
            yield Hostile(url, app, key, key_id, upstream)


def _ok_after(h: Hostile, rows_before: int) -> None:
    """A plain generation after the hostile ones is recorded: the writer still works."""
    plain = h.chat()
    rows = h.rows()
    assert plain.id in rows
    assert len(rows) == rows_before + 1
    assert h.app.state.gateway.writer.health().dead_letters == 0


def test_hostile_request_headers_are_recorded_bounded(hostile: Hostile) -> None:
    title, referer, session = "T" * 600, "https://" + "r" * 600, "s" * 250
    done = hostile.chat(extra_headers={"X-Title": title, "HTTP-Referer": referer, "X-Session-Id": session})
    row = hostile.rows()[done.id]
    assert row["app_title"] == title[:TEXT_LIMITS["app_title"]] and len(row["app_title"]) == 500
    assert row["app"] == referer[:500]
    assert row["session_id"] == session[:200]
    _ok_after(hostile, 1)


def test_hostile_body_fields_are_recorded_bounded(hostile: Hostile) -> None:
    nul = hostile.chat(extra_body={"session_id": "task\x00one" + "x" * 300})
    # A lone surrogate is valid JSON text (an escape) but no database can store it.
    raw = httpx.post(hostile.url + "/v1/chat/completions", headers={
        "Authorization": f"Bearer {hostile.key}", "Content-Type": "application/json"},
        content=b'{"model": "test/echo", "messages": [{"role": "user", "content": "a"}], '
                b'"session_id": "half\\ud800pair"}')
    assert raw.status_code == 400 and "JSON" in raw.json()["error"]["message"]  # named, not a 5xx
    # Unknown models (404) are recorded too, with the name as the client sent it, bounded.
    for model in ("nope\x00model", "a/" + "b" * 300):
        with pytest.raises(openai.NotFoundError):
            hostile.client.chat.completions.create(model=model, messages=[{"role": "user", "content": "a"}])
    rows = hostile.rows()
    assert rows[nul.id]["session_id"] == ("taskone" + "x" * 300)[:200]
    errors = sorted(r["model"] for r in rows.values() if r["status"] == "error")
    assert errors == sorted(["nopemodel", ("a/" + "b" * 300)[:200]])
    _ok_after(hostile, len(rows))
    # The two 404s were refused before any provider was tried: recorded, but no model's usage.
    assert hostile.requests_in_rollups() == len(rows) + 1 - len(errors)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_hostile_upstream_values_are_recorded_bounded(hostile: Hostile, stream: bool) -> None:
    hostile.upstream.answer = Answer(upstream_id="chatcmpl-" + "i" * 300, finish_reason="f" * 60,
                                     prompt_tokens=2**63, completion_tokens=2**63)
    if stream:
        with hostile.chat(stream=True, stream_options={"include_usage": True}) as events:
            generation_id = next(iter(events)).id
            for _ in events:
                pass
    else:
        generation_id = hostile.chat().id
    hostile.upstream.answer = Answer()
    row = hostile.rows()[generation_id]
    assert row["upstream_id"] == ("chatcmpl-" + "i" * 300)[:200]
    assert row["finish_reason"] == "f" * 40
    assert row["prompt_tokens"] == MAX_TOKENS and row["completion_tokens"] == MAX_TOKENS
    assert 0 < row["cost_nanousd"] <= MAX_COST_NANOUSD
    _ok_after(hostile, 1)
    with hostile.app.state.gateway.engine.connect() as conn:
        spend = conn.execute(select(schema.keys.c.usage_nanousd).where(
            schema.keys.c.id == hostile.key_id)).scalar_one()
    assert spend == sum(r["cost_nanousd"] for r in hostile.rows().values())
