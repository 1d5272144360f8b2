"""Stored responses: per key, retrieve/delete through the SDK, TTL expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import openai
import pytest
from sqlalchemy import Engine, select, text, update

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


def _turn(i: int) -> list[dict[str, object]]:
    return [{"type": "message", "role": "user", "content": f"turn {i}: " + "x" * 500}]


def _response(i: int) -> dict[str, object]:
    return {"id": f"resp-chain-{i}", "model": "m",
            "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text",
                                                                             "text": f"answer {i}"}]}]}


def _save_turn(engine: Engine, key_id: str, i: int, response_id: str, conversation: list[dict[str, object]],
               chain: tuple[str, ...], now: datetime) -> tuple[list[dict[str, object]], store.StoredResponse]:
    """Save turn ``i`` after ``conversation`` (stored as ``chain``) as ``response_id``; the whole
    conversation saved, and the row loaded back."""
    whole = [*conversation, *_turn(i)]
    store.save(engine, key_id, {**_response(i), "id": response_id}, whole, now=now, ttl_s=3600, chain=chain,
               own_items=1)
    loaded = store.load(engine, key_id, response_id, now=now)
    assert loaded is not None
    return whole, loaded


def _stored_bytes(engine: Engine, response_id: str) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(store.stored_responses.c.input)
                                .where(store.stored_responses.c.id == response_id)).scalar_one())


def test_a_long_conversation_stores_each_turn_once(stack: ResponsesStack) -> None:
    """Each turn keeps its own items and a link; loading rebuilds exactly the whole conversation."""
    engine = create_db_engine(stack.database)
    now = datetime(2026, 1, 1)
    turns = 3 * store.MAX_CHAIN + 2
    try:
        conversation: list[dict[str, object]] = []
        chain: tuple[str, ...] = ()
        sizes = []
        for i in range(turns):
            conversation, loaded = _save_turn(engine, stack.key_id, i, f"resp-chain-{i}", conversation, chain, now)
            assert loaded.input == conversation, i  # what the old, whole-conversation rows held
            assert 1 <= len(loaded.chain) <= store.MAX_CHAIN
            sizes.append(_stored_bytes(engine, f"resp-chain-{i}"))
            conversation, chain = loaded.conversation, loaded.chain
        linked = [size for size in sizes if size < 1000]
        assert len(linked) >= turns - turns // store.MAX_CHAIN - 1  # all but the checkpoints
        assert sum(sizes) < turns * 1000 + (turns // store.MAX_CHAIN) * turns * 600  # O(n), not O(n^2)
        assert store.load(engine, "another-key", f"resp-chain-{turns - 1}", now=now) is None
    finally:
        engine.dispose()


def test_deleting_a_turn_keeps_the_turns_after_it(stack: ResponsesStack) -> None:
    engine = create_db_engine(stack.database)
    now = datetime(2026, 1, 1)
    try:
        conversation: list[dict[str, object]] = []
        chain: tuple[str, ...] = ()
        for i in range(5):
            _, loaded = _save_turn(engine, stack.key_id, i, f"resp-del-{i}", conversation, chain, now)
            conversation, chain = loaded.conversation, loaded.chain
        before = store.load(engine, stack.key_id, "resp-del-4", now=now)
        assert before is not None
        assert not store.remove(engine, "another-key", "resp-del-2", now=now)
        assert store.remove(engine, stack.key_id, "resp-del-2", now=now)
        assert store.load(engine, stack.key_id, "resp-del-2", now=now) is None
        after = store.load(engine, stack.key_id, "resp-del-4", now=now)
        assert after is not None and after.input == before.input
        assert "resp-del-2" not in after.chain
        third = store.load(engine, stack.key_id, "resp-del-3", now=now)
        assert third is not None and third.chain == ("resp-del-3",)  # the whole conversation, again
    finally:
        engine.dispose()


def test_a_linked_turn_keeps_its_ancestors_alive(stack: ResponsesStack) -> None:
    engine = create_db_engine(stack.database)
    now = datetime(2026, 1, 1)
    try:
        store.save(engine, stack.key_id, {**_response(0), "id": "resp-ttl-0"}, _turn(0), now=now, ttl_s=60)
        first = store.load(engine, stack.key_id, "resp-ttl-0", now=now)
        assert first is not None
        later = now + timedelta(seconds=50)
        store.save(engine, stack.key_id, {**_response(1), "id": "resp-ttl-1"}, [*first.conversation, *_turn(1)],
                   now=later, ttl_s=60, chain=first.chain, own_items=1)
        # Past the first turn's own TTL, and after a save that purges what has expired:
        store.save(engine, stack.key_id, {**_response(9), "id": "resp-other"}, _turn(9),
                   now=now + timedelta(seconds=100), ttl_s=60)
        second = store.load(engine, stack.key_id, "resp-ttl-1", now=now + timedelta(seconds=100))
        assert second is not None and second.input == [*first.conversation, *_turn(1)]
        assert store.load(engine, stack.key_id, "resp-ttl-1", now=later + timedelta(seconds=60)) is None
    finally:
        engine.dispose()


async def test_a_follow_up_stores_only_its_own_turn(stack: ResponsesStack) -> None:
    stack.stub.script(Reply.of("openai", "plain.json"), Reply.of("openai", "plain.json"))
    client = stack.client()
    first = await client.responses.create(model="test/oa", input="x" * 5000)
    second = await client.responses.create(model="test/oa", input="And then?", previous_response_id=first.id)
    engine = create_db_engine(stack.database)
    try:
        assert _stored_bytes(engine, first.id) > 5000
        assert _stored_bytes(engine, second.id) < 1000
    finally:
        engine.dispose()
    page = await client.responses.input_items.list(second.id, order="asc")
    texts = [item.content[0].text for item in page.data]  # type: ignore[union-attr]
    assert texts == ["x" * 5000, "Hello there!", "And then?"]


def test_a_turn_whose_previous_was_purged_meanwhile_keeps_the_whole_conversation(stack: ResponsesStack) -> None:
    engine = create_db_engine(stack.database)
    now = datetime(2026, 1, 1)
    try:
        store.save(engine, stack.key_id, {**_response(0), "id": "resp-gone-0"}, _turn(0), now=now, ttl_s=60)
        first = store.load(engine, stack.key_id, "resp-gone-0", now=now)
        assert first is not None
        whole = [*first.conversation, *_turn(1)]
        # The follow-up was generated past the first response's expiry; the save purges it first.
        store.save(engine, stack.key_id, {**_response(1), "id": "resp-gone-1"}, whole,
                   now=now + timedelta(seconds=61), ttl_s=60, chain=first.chain, own_items=1)
        assert store.load(engine, stack.key_id, "resp-gone-0", now=now) is None
        second = store.load(engine, stack.key_id, "resp-gone-1", now=now + timedelta(seconds=61))
        assert second is not None and second.input == whole and second.chain == ("resp-gone-1",)
    finally:
        engine.dispose()


async def test_an_id_no_row_can_have_is_not_found(stack: ResponsesStack) -> None:
    """A NUL byte (PostgreSQL refuses it in text) or an overlong id names nothing: 404, not 500."""
    client = stack.client()
    for bad in ("resp\x00x", "r" * 49):
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(model="test/oa", input="Hi", previous_response_id=bad)
    engine = create_db_engine(stack.database)
    try:
        assert store.load(engine, stack.key_id, "a\x00b", now=datetime(2026, 1, 1)) is None
        assert not store.remove(engine, stack.key_id, "a\x00b", now=datetime(2026, 1, 1))
    finally:
        engine.dispose()
