"""The simulated providers speak each vendor's wire format: checked with the official SDKs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import anthropic
import openai
import pytest

from tollway.demo.fleet import Fleet, Profile, SimProvider

MARK = "[sim prompt=51850 cached=42000 completion=37]"


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    providers = [SimProvider("sim-a", "A (simulated)", "openai", "US", Profile(0.0, 1e6, 0.0)),
                 SimProvider("sim-broken", "Broken (simulated)", "openai", "US", Profile(0.0, 1e6, 1.0))]
    fleet = Fleet(providers)
    await fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()


def _root(fleet: Fleet, name: str = "sim-a") -> str:
    return f"http://127.0.0.1:{fleet.ports[name]}"


async def test_openai_sdk_reads_marker_usage(fleet: Fleet) -> None:
    client = openai.AsyncOpenAI(base_url=_root(fleet) + "/v1", api_key="x", max_retries=0)
    done = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": f"{MARK} go"}])
    assert done.usage is not None
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (51850, 37)
    assert done.usage.prompt_tokens_details is not None
    assert done.usage.prompt_tokens_details.cached_tokens == 42000
    assert len((done.choices[0].message.content or "").split()) == 37

    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": f"{MARK} go"}], stream=True,
        stream_options={"include_usage": True}, max_tokens=20)
    text, usage, finish = [], None, None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert usage is not None and usage.completion_tokens == 20  # max_tokens caps the marker's size
    assert len("".join(text).split()) == 20
    assert finish == "stop"
    await client.close()


async def test_anthropic_sdk_reads_usage_with_cache_apart(fleet: Fleet) -> None:
    client = anthropic.AsyncAnthropic(base_url=_root(fleet), api_key="x", max_retries=0)
    done = await client.messages.create(model="claude", max_tokens=100,
                                        messages=[{"role": "user", "content": f"{MARK} go"}])
    # Anthropic reports cache reads apart from input_tokens.
    assert done.usage.input_tokens == 51850 - 42000
    assert done.usage.cache_read_input_tokens == 42000
    assert done.usage.output_tokens == 37
    assert done.stop_reason == "end_turn"
    async with client.messages.stream(model="claude", max_tokens=100,
                                      messages=[{"role": "user", "content": f"{MARK} go"}]) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert len(text.split()) == 37
    assert final.usage.output_tokens == 37
    assert final.usage.cache_read_input_tokens == 42000
    await client.close()


async def test_gemini_stream_carries_usage_metadata_last(fleet: Fleet) -> None:
    url = _root(fleet) + "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    body = {"contents": [{"role": "user", "parts": [{"text": f"{MARK} go"}]}]}
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        assert resp.status == 200
        raw = await resp.text()
    events = [line for line in raw.splitlines() if line.startswith("data: ")]
    assert len(events) > 1
    import json

    docs = [json.loads(e[6:]) for e in events]
    assert all("usageMetadata" not in d for d in docs[:-1])
    meta = docs[-1]["usageMetadata"]
    assert (meta["promptTokenCount"], meta["candidatesTokenCount"], meta["cachedContentTokenCount"]) == \
        (51850, 37, 42000)
    assert docs[-1]["candidates"][0]["finishReason"] == "STOP"
    text = "".join(d["candidates"][0]["content"]["parts"][0]["text"] for d in docs)
    assert len(text.split()) == 37


async def test_injected_errors_use_each_formats_error_shape(fleet: Fleet) -> None:
    oa = openai.AsyncOpenAI(base_url=_root(fleet, "sim-broken") + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.InternalServerError) as err:
        await oa.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 503
    an = anthropic.AsyncAnthropic(base_url=_root(fleet, "sim-broken"), api_key="x", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as aerr:
        await an.messages.create(model="c", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert aerr.value.status_code == 529
    assert fleet.servers["sim-broken"].stats.errors == 2
    await oa.close()
    await an.close()
