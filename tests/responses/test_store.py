"""Stored responses: per key, retrieve/delete through the SDK, TTL expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import openai
import pytest
from sqlalchemy import text, update

from tests.adapters.harness import Reply
from tests.api.test_openapi_conformance import _errors
from tests.responses.conftest import ResponsesStack
from tests.responses.spec import SPEC
from tollway.ledger.db import create_db_engine
from tollway.responses import store


async def test_retrieve_and_delete_are_per_key(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.json"))
    mine, theirs = stack.client(), stack.client(stack.other_key)
    response = await mine.responses.create(model="test/oa", input="Hi")
    assert (await mine.responses.retrieve(response.id)).output_text == "Hello there!"
    with pytest.raises(openai.NotFoundError):
        await theirs.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        await theirs.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        await theirs.responses.create(model="test/oa", input="Hi", previous_response_id=response.id)
    await mine.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        await mine.responses.retrieve(response.id)


async def test_store_false_keeps_nothing(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.json"))
    client = stack.client()
    response = await client.responses.create(model="test/oa", input="Hi", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)


def test_expired_responses_are_gone(stack: ResponsesStack) -> None:
    engine = create_db_engine(stack.database)
    now = datetime(2026, 1, 1)
    try:
        store.save(engine, stack.key_id, {"id": "resp-ttl", "model": "m", "output": []}, [{"role": "user"}],
                   now=now, ttl_s=60)
        assert store.load(engine, stack.key_id, "resp-ttl", now=now + timedelta(seconds=59)) is not None
        assert store.load(engine, stack.key_id, "resp-ttl", now=now + timedelta(seconds=60)) is None
        assert store.load(engine, "another-key", "resp-ttl", now=now) is None
        # the next save purges what has expired
        store.save(engine, stack.key_id, {"id": "resp-next", "model": "m", "output": []}, [],
                   now=now + timedelta(seconds=61), ttl_s=60)
        assert not store.remove(engine, stack.key_id, "resp-ttl", now=now)
    finally:
        engine.dispose()


async def test_input_items_are_listed_newest_first(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.json"))
    client = stack.client()
    response = await client.responses.create(model="test/oa", input=[
        {"role": "user", "content": "one"}, {"role": "user", "content": "two"}])
    page = await client.responses.input_items.list(response.id)
    texts = [item.content[0].text for item in page.data]  # type: ignore[union-attr]
    assert texts == ["two", "one"]
    raw = httpx.get(f"{stack.url}/v1/responses/{response.id}/input_items?order=asc&limit=1",
                    headers={"Authorization": f"Bearer {stack.key}"}).json()
    assert [i["content"][0]["text"] for i in raw["data"]] == ["one"] and raw["has_more"] is True
    assert _errors(SPEC, "ResponseItemList", raw) == []
    with pytest.raises(openai.NotFoundError):
        await stack.client(stack.other_key).responses.input_items.list(response.id)


async def test_an_expired_response_answers_404(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.json"))
    client = stack.client()
    response = await client.responses.create(model="test/oa", input="Hi")
    engine = create_db_engine(stack.database)
    try:
        with engine.begin() as conn:
            conn.execute(update(store.stored_responses).where(store.stored_responses.c.id == response.id)
                         .values(expires_at=datetime(2000, 1, 1)))
    finally:
        engine.dispose()
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model="test/oa", input="Hi", previous_response_id=response.id)


async def test_a_store_failure_does_not_fail_the_answer(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.json"), Reply.of("openai", "plain.sse"))
    engine = create_db_engine(stack.database)
    try:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE stored_responses RENAME TO stored_responses_away"))
        client = stack.client()
        response = await client.responses.create(model="test/oa", input="Hi")
        assert response.output_text == "Hello there!"
        async with client.responses.stream(model="test/oa", input="Hi") as stream:
            final = await stream.get_final_response()
        assert final.output_text == "Hello there!"
    finally:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE stored_responses_away RENAME TO stored_responses"))
        engine.dispose()
    assert stack.generation(response.id)["status"] == "success"
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)
