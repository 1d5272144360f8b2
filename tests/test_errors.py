"""Bad input and upstream failures get clear errors in OpenAI's shape; nothing leaks."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import Running


def _post(r: Running, body: bytes | str, key: str | None = None, **headers: str) -> httpx.Response:
    hdrs = {"Authorization": f"Bearer {key or r.key}", "Content-Type": "application/json", **headers}
    return httpx.post(r.url + "/v1/chat/completions", content=body, headers=hdrs, timeout=30)


def _error(resp: httpx.Response) -> dict:
    doc = resp.json()
    assert set(doc) == {"error"}
    assert {"message", "type", "code"} <= set(doc["error"])
    return doc["error"]


def test_malformed_json_is_400(running: Running) -> None:
    resp = _post(running, b'{"model": "test/echo", "messages": [')
    assert resp.status_code == 400
    assert "not valid JSON" in _error(resp)["message"]


@pytest.mark.parametrize(("body", "fragment"), [
    ('{"model": "test/echo"}', "'messages' must be a non-empty list"),
    ('{"model": "test/echo", "messages": [{"content": "x"}]}', "messages[0]"),
    ('{"model": "test/echo", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
     "'max_tokens' must be a positive integer"),
    ('{"model": "test/echo", "messages": [{"role": "user", "content": "x"}], "temperature": 7}',
     "'temperature'"),
    ('{"messages": [{"role": "user", "content": "x"}]}', "'model' is required"),
    ('[1, 2]', "must be a JSON object"),
])
def test_invalid_fields_are_400_and_name_the_field(running: Running, body: str, fragment: str) -> None:
    resp = _post(running, body)
    assert resp.status_code == 400
    err = _error(resp)
    assert fragment in err["message"]
    assert err["type"] == "invalid_request_error"


def test_unknown_model_is_404(running: Running) -> None:
    resp = _post(running, '{"model": "nope/nothing", "messages": [{"role": "user", "content": "x"}]}')
    assert resp.status_code == 404
    assert "nope/nothing" in _error(resp)["message"]


def test_bad_or_missing_key_is_401(running: Running) -> None:
    body = '{"model": "test/echo", "messages": [{"role": "user", "content": "x"}]}'
    assert _post(running, body, key="sk-tw-wrong").status_code == 401
    resp = httpx.post(running.url + "/v1/chat/completions", content=body)
    assert resp.status_code == 401
    assert "Authorization: Bearer" in _error(resp)["message"]


def test_body_too_large_is_413(stub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.support.servers import gateway_server, make_settings, new_key

    upstream, url = stub
    db = f"sqlite:///{tmp_path / 'l.db'}"
    settings = make_settings(db, url, extra={"server": {"max_body_bytes": 2048, "key_cache_ttl_s": 0}})
    _, key = new_key(db)
    with gateway_server(settings) as (base, _app):
        big = '{"model": "test/echo", "messages": [{"role": "user", "content": "' + "x" * 5000 + '"}]}'
        resp = httpx.post(base + "/v1/chat/completions", content=big,
                          headers={"Authorization": f"Bearer {key}"})
        assert resp.status_code == 413
        assert "server.max_body_bytes" in _error(resp)["message"]
        assert upstream.requests == []


def test_upstream_failure_is_502_with_raw_body_and_no_secret(running: Running) -> None:
    running.upstream.behaviour.status = 500
    resp = _post(running, '{"model": "test/echo", "messages": [{"role": "user", "content": "x"}]}')
    assert resp.status_code == 502
    err = _error(resp)
    assert "HTTP 500" in err["message"] and "upstream exploded" in err["message"]
    assert "upstream exploded" in err["metadata"]["raw"]
    assert "sk-upstream-secret" not in resp.text
    running.flush()
    with running.gateway.engine.connect() as conn:
        from sqlalchemy import select

        from tollway.ledger import schema

        row = conn.execute(select(schema.generations)).one()._mapping
    assert row["status"] == "error" and row["http_status"] == 502 and row["cost_nanousd"] == 0


def test_upstream_caller_error_is_relayed_not_retried(running: Running) -> None:
    running.upstream.behaviour.status = 400
    running.upstream.behaviour.error_message = "max_tokens is too large"
    client = openai.OpenAI(base_url=running.url + "/v1", api_key=running.key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="test/echo", messages=[{"role": "user", "content": "x"}])
    assert "max_tokens is too large" in str(info.value)
    assert len(running.upstream.requests) == 1


def test_wrong_upstream_key_never_leaks(running: Running, caplog: pytest.LogCaptureFixture) -> None:
    running.upstream.api_key = "sk-something-else"
    resp = _post(running, '{"model": "test/echo", "messages": [{"role": "user", "content": "x"}]}')
    assert resp.status_code == 502
    assert "sk-upstream-secret" not in resp.text
    assert all("sk-upstream-secret" not in rec.getMessage() for rec in caplog.records)


def test_unknown_path_and_method(running: Running) -> None:
    resp = httpx.get(running.url + "/v1/nothing-here")
    assert resp.status_code == 404 and "no such endpoint" in _error(resp)["message"]
    resp = httpx.get(running.url + "/v1/chat/completions")
    assert resp.status_code == 405
