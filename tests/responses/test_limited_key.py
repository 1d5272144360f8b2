"""A limited key's /v1/responses call sends the output cap it reserved upstream, through the
chat translation and through the Responses-native pass-through alike."""

from __future__ import annotations

import json

import httpx

from tests.adapters.harness import Reply
from tests.responses.conftest import ResponsesStack
from tests.responses.test_responses import NATIVE
from tests.support.servers import new_key


def test_the_reserved_output_cap_reaches_both_kinds_of_upstream(stack: ResponsesStack) -> None:
    _, key = new_key(stack.database, name="capped", limit_nanousd=1_000_000_000)
    headers = {"Authorization": f"Bearer {key}"}
    stack.stub.script(Reply(200, json.dumps(NATIVE).encode()))
    native = httpx.post(stack.url + "/v1/responses", headers=headers, timeout=30,
                        json={"model": "test/native", "input": "Hi"})
    assert native.status_code == 200, native.text
    assert stack.stub.received[-1].body["max_output_tokens"] == 4096  # limits.default_max_output_tokens
    stack.stub.script(Reply.of("openai", "plain.json"))
    translated = httpx.post(stack.url + "/v1/responses", headers=headers, timeout=30,
                            json={"model": "test/oa", "input": "Hi", "max_output_tokens": 50})
    assert translated.status_code == 200, translated.text
    assert stack.stub.received[-1].body["max_tokens"] == 50
    # An unlimited key's body is left as the client sent it.
    stack.stub.script(Reply(200, json.dumps(NATIVE).encode()))
    httpx.post(stack.url + "/v1/responses", headers={"Authorization": f"Bearer {stack.key}"}, timeout=30,
               json={"model": "test/native", "input": "Hi"})
    assert "max_output_tokens" not in stack.stub.received[-1].body
