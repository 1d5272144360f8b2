"""POST /v1/embeddings with the official ``openai`` SDK, metered at the endpoint's prompt price."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.adapters.harness import Reply, Stack, running_stack


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as s:
        yield s


def client(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.url + "/api/v1", api_key=stack.key, max_retries=0)


async def test_openai_format_embeddings_are_metered(stack: Stack) -> None:
    stack.stub.script(Reply.of("openai", "embeddings.json"))
    result = await client(stack).embeddings.create(model="test/oa-embed", input=["hello", "world"],
                                                   encoding_format="float")
    got = stack.stub.received[-1]
    assert got.path == "/oa/v1/embeddings"
    assert got.body == {"model": "embed-up", "input": ["hello", "world"], "encoding_format": "float"}
    assert [d.embedding for d in result.data] == [[0.0023064255, -0.009327292, 0.015797347], [0.1, 0.2, 0.3]]
    assert result.model == "test/oa-embed"
    assert result.usage.prompt_tokens == 8
    generation_id = result.model_dump()["id"]
    row = stack.generation(generation_id)
    # 8 prompt tokens at 3 USD per Mtok = 24,000 nano-USD; nothing else is charged
    assert (row["api"], row["prompt_tokens"], row["completion_tokens"], row["cost_nanousd"]) == \
        ("embeddings", 8, 0, 24_000)
    assert row["key_id"] == stack.key_id


async def test_gemini_batch_embed_contents(stack: Stack) -> None:
    stack.stub.script(Reply.of("gemini", "embeddings.json"))
    result = await client(stack).embeddings.create(model="test/gem-embed", input=["hello", "world!!!"],
                                                   encoding_format="float")
    got = stack.stub.received[-1]
    assert got.path == "/ge/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert got.headers["x-goog-api-key"] == "sk-ge"
    assert got.body == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "world!!!"}]}}]}
    assert [d.embedding for d in result.data] == [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
    assert [d.index for d in result.data] == [0, 1]
    # Gemini reports no usage: estimated locally, ~4 bytes a token (5 -> 2, 8 -> 2)
    assert result.usage.prompt_tokens == 4
    row = stack.generation(result.model_dump()["id"])
    assert (row["estimated"], row["cost_nanousd"]) == (True, 12_000)


async def test_embeddings_errors(stack: Stack) -> None:
    stack.stub.script()
    with pytest.raises(openai.BadRequestError):
        await client(stack).embeddings.create(model="test/oa-embed", input=[])
    with pytest.raises(openai.APIStatusError) as caught:
        await client(stack).embeddings.create(model="test/claude", input="hi")
    assert "offers no embeddings" in str(caught.value.message)
    assert stack.stub.received == []  # nothing reached an upstream
