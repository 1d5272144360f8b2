"""No secret leaves: an upstream that echoes the provider key (and a custom credential
header) in its error bodies, before or during a stream, has it redacted from what the
client gets, the ledger rows and the logs."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from sqlalchemy import select

from tests.support.servers import aiohttp_server, gateway_server, make_settings, new_key
from tollway.ledger.db import create_db_engine
from tollway.ledger.schema import generations
from tollway.redaction import REDACTED, Redactor

KEY = "sk-proj-Zx81uQ0aLpT7vN3mKd92"
HEADER_SECRET = "tok_4f9a8b7c6d5e4f3a2b1c"
LEAKS = (KEY, KEY[:12], HEADER_SECRET, "sk-pro****Kd92", "Zx81uQ0aLpT7")


def _leaky_error(request: web.Request) -> dict[str, Any]:
    auth = request.headers["Authorization"]
    return {"error": {"message": f"Incorrect API key provided: {KEY[:10]}...{KEY[-4:]}; you sent "
                                 f"'{auth}' and X-Team-Token {request.headers.get('X-Team-Token')}; "
                                 f"key hint sk-pro****Kd92", "type": "invalid_request_error"}}


async def _chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        return web.json_response(_leaky_error(request), status=500)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
                     b'"choices":[{"index":0,"delta":{"role":"assistant","content":"hel"},"finish_reason":null}]}\n\n')
    await asyncio.sleep(0.3)  # the first chunk reaches the client on its own: the error is mid-stream
    await resp.write(b"data: " + json.dumps(_leaky_error(request)).encode() + b"\n\n")
    return resp


def _no_leak(text: str, where: str) -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked into {where}: {text}"


@pytest.fixture
def gateway_and_key(tmp_path: Path) -> Any:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _chat)
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    with aiohttp_server(app) as upstream:
        settings = make_settings(database, upstream, providers=[{
            "name": "stub", "kind": "openai", "base_url": upstream + "/v1", "api_key": KEY,
            "headers": {"X-Team-Token": HEADER_SECRET}}])
        _, key = new_key(database)
        with gateway_server(settings) as (url, app_):
            yield url, app_, key, database


def _rows(app: Any, database: str) -> list[dict[str, Any]]:
    assert app.state.gateway.writer.flush(10)
    engine = create_db_engine(database)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(generations))]
    engine.dispose()
    return rows


def test_an_echoed_key_is_redacted_from_the_error_the_ledger_and_the_logs(
        gateway_and_key: Any, caplog: pytest.LogCaptureFixture) -> None:
    url, app, key, database = gateway_and_key
    caplog.set_level(logging.DEBUG)
    client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="test/echo", messages=[{"role": "user", "content": "hi"}])
    body = json.dumps(info.value.body)
    _no_leak(body, "the relayed error")
    assert REDACTED in info.value.body["message"]  # type: ignore[index]
    assert REDACTED in info.value.body["metadata"]["raw"]  # type: ignore[index]
    with client.chat.completions.with_streaming_response.create(
            model="test/echo", messages=[{"role": "user", "content": "hi"}], stream=True) as resp:
        streamed = resp.read().decode()
    _no_leak(streamed, "the mid-stream error chunk")
    assert "provider error mid-stream" in streamed and REDACTED in streamed
    rows = _rows(app, database)
    assert len(rows) == 2
    for row in rows:
        _no_leak(json.dumps(row, default=str), "a ledger row")
        assert REDACTED in row["error"]
    # A log line that carries an upstream message is redacted too.
    logging.getLogger("tollway.test").warning("upstream said %s", info.value.body)
    _no_leak(caplog.text, "the logs")
    assert REDACTED in caplog.text


def test_redactor_rules() -> None:
    redactor = Redactor([KEY, "short"])
    assert redactor.redact(f"a {KEY} b") == f"a {REDACTED} b"
    assert redactor.redact(f"x {KEY[:9]}... y") == f"x {REDACTED} y"  # a truncated echo
    assert redactor.redact("Bearer abcdefghijklmnop123") == REDACTED
    assert redactor.redact("AIzaSyA-1234567890abcdefghijkl") == REDACTED
    assert redactor.redact("short words stay") == "short words stay"  # under 8 characters: not a secret
    assert redactor.redact("model gpt-4o failed: HTTP 500") == "model gpt-4o failed: HTTP 500"
