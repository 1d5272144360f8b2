"""Responses validate against the OpenAPI specs the official SDKs are generated from.

The specs live in ../shared/reference/specs (OpenRouter's and OpenAI's, pinned commits).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from tests.conftest import SHARED, Running

SPECS = SHARED / "reference" / "specs"


@functools.cache
def _registry(name: str) -> tuple[str, Registry]:
    path = SPECS / name
    doc = yaml.safe_load(Path(path).read_text())
    uri = f"urn:{name}"
    return uri, Registry().with_resource(uri, Resource.from_contents(doc, default_specification=
                                                                     _draft()))


def _draft() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def _errors(spec: str, schema: str, instance: Any) -> list[str]:
    uri, registry = _registry(spec)
    validator = Draft202012Validator({"$ref": f"{uri}#/components/schemas/{schema}"}, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]


def _post(r: Running, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(r.url + "/api/v1/chat/completions", json=body,
                      headers={"Authorization": f"Bearer {r.key}"}, timeout=30)


def test_chat_completion_matches_both_specs(running: Running) -> None:
    doc = _post(running, {"model": "test/echo", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "hi"}]}).json()
    assert _errors("openrouter-openapi.yaml", "ChatResult", doc) == []
    assert _errors("openai-openapi.yaml", "CreateChatCompletionResponse", doc) == []


def test_stream_chunks_match_the_openrouter_spec(running: Running) -> None:
    resp = _post(running, {"model": "test/echo", "max_tokens": 4, "stream": True,
                           "messages": [{"role": "user", "content": "hi"}]})
    assert resp.headers["content-type"] == "text/event-stream"
    events = [line[6:] for line in resp.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 6  # 4 content chunks, the finish chunk, the usage chunk
    for chunk in chunks:
        assert _errors("openrouter-openapi.yaml", "ChatStreamChunk", chunk) == [], chunk
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
