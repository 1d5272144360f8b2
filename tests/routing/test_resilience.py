"""Failures over real sockets: flaky and hanging upstreams, stream failover, the breaker,
mid-stream errors, every attempt listed, never retrying the caller's own 4xx."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.routing.conftest import MODEL, fleet, served_by
from tests.routing.stubs import Stub, flaky


def test_flaky_and_hanging_upstream_still_gives_full_success(tmp_path: Path) -> None:
    # 'cheap' is 3x cheaper, so load balancing sends it most traffic: 30% of its answers
    # are 500s and 10% never come.  Every request must still succeed.  Outage demotion and
    # the breaker are turned off here so that every fault goes through failover (they
    # have their own tests).
    cheap = Stub("cheap", plan=flaky(seed=5, error_rate=0.3, hang_rate=0.1))
    steady = Stub("steady")
    routing = {"outage_min_failures": 10_000, "breaker_failures": 10_000, "breaker_error_rate": 1.0,
               "breaker_min_samples": 10_000}
    with fleet(tmp_path, [cheap, steady], timeouts={"first_byte": 0.3, "idle": 0.3},
               routing=routing) as f:
        client = f.client()
        served = []
        for i in range(60):
            if i % 3 == 2:
                chunks = list(client.chat.completions.create(
                    model=MODEL, messages=[{"role": "user", "content": f"q{i}"}], stream=True))
                text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
                served.append(chunks[0].model_dump()["provider"])
            else:
                resp = client.chat.completions.create(model=MODEL, messages=[{"role": "user",
                                                                              "content": f"q{i}"}])
                text = resp.choices[0].message.content or ""
                served.append(served_by(resp))
            assert text == " alpha beta gamma delta", f"request {i} got {text!r}"
        rows = f.generations()
    failures = cheap.count("500") + cheap.count("hang")
    assert cheap.count("500") > 0 and cheap.count("hang") > 0, "the faults were never exercised"
    assert set(served) == {"cheap", "steady"}
    assert len(rows) == 60 and all(r["status"] == "success" for r in rows)
    # Every failure of 'cheap' was followed by a fallback recorded in the same generation.
    fell_back = [r for r in rows if r["attempts"] and r["attempts"][0]["provider"] == "cheap"
                 and r["attempts"][0]["status"] != 200]
    assert len(fell_back) == failures
    assert all(r["provider"] == "steady" and r["attempts"][-1] == {**r["attempts"][-1], "status": 200}
               for r in fell_back)
    assert any("timed out" in r["attempts"][0]["message"] or "first byte" in r["attempts"][0]["message"]
               for r in fell_back)


@pytest.mark.parametrize("fault", ["500", "429", "hang"])
def test_stream_falls_back_before_the_first_byte(tmp_path: Path, fault: str) -> None:
    first = Stub("first", plan=lambda _n: fault)
    second = Stub("second")
    with fleet(tmp_path, [first, second], timeouts={"first_byte": 0.4}) as f:
        chunks = list(f.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
            extra_body={"provider": {"order": ["first", "second"]}}))
        rows = f.generations()
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == " alpha beta gamma delta"
    assert {c.model_dump()["provider"] for c in chunks} == {"second"}
    assert first.count() == 1 and second.count() == 1
    assert [a["provider"] for a in rows[0]["attempts"]] == ["first", "second"]
    assert rows[0]["attempts"][0]["status"] == (int(fault) if fault.isdigit() else 502)


def test_after_the_first_byte_a_stream_ends_with_an_error_chunk_and_is_billed(tmp_path: Path) -> None:
    dropper = Stub("dropper", plan=lambda _n: "drop", chunks=6)
    spare = Stub("spare")
    with fleet(tmp_path, [dropper, spare]) as f:
        # The SDK raises on the error chunk (as it does with OpenRouter's), so read the raw SSE.
        with f.client().chat.completions.with_streaming_response.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
                extra_body={"provider": {"order": ["dropper"]}}) as resp:
            events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
        with pytest.raises(openai.APIError, match="stream broke"):
            list(f.client().chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True,
                extra_body={"provider": {"order": ["dropper"]}}))
        rows = f.generations()
    assert spare.count() == 0, "a stream that has started must not fail over"
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:2]) == " alpha beta"
    error_chunk, usage_chunk = chunks[-2], chunks[-1]
    assert error_chunk["choices"][0]["finish_reason"] == "error"
    assert error_chunk["error"]["metadata"]["provider_name"] == "dropper"
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0
    assert usage_chunk["usage"]["cost"] > 0
    row = rows[0]
    assert row["status"] == "error" and row["provider"] == "dropper"
    assert row["completion_tokens"] == usage_chunk["usage"]["completion_tokens"]
    assert row["cost_nanousd"] == usage_chunk["usage"]["tollway"]["cost_nanousd"] > 0


def test_when_every_attempt_fails_the_error_lists_each(tmp_path: Path) -> None:
    stubs = [Stub("a", plan=lambda _n: "500"), Stub("b", plan=lambda _n: "503"), Stub("c", plan=lambda _n: "429")]
    with fleet(tmp_path, stubs) as f:
        with pytest.raises(openai.APIStatusError) as info:
            f.ask({"sort": "price"})
        rows = f.generations()
    assert info.value.status_code == 502
    error = info.value.body
    assert isinstance(error, dict)
    assert [(a["provider"], a["status"]) for a in error["metadata"]["attempts"]] == \
        [("a", 500), ("b", 503), ("c", 429)]
    assert "a: 500" in error["message"] and "b: 503" in error["message"] and "c: 429" in error["message"]
    assert rows[0]["status"] == "error" and len(rows[0]["attempts"]) == 3


def test_the_callers_own_4xx_is_not_retried(tmp_path: Path) -> None:
    picky, other = Stub("picky", plan=lambda _n: "400"), Stub("other")
    with fleet(tmp_path, [picky, other]) as f, pytest.raises(openai.BadRequestError):
        f.ask({"order": ["picky", "other"]})
    assert picky.count() == 1 and other.count() == 0


def test_overall_deadline_spans_attempts(tmp_path: Path) -> None:
    stubs = [Stub("slow1", plan=lambda _n: "hang"), Stub("slow2", plan=lambda _n: "hang"),
             Stub("never")]
    with fleet(tmp_path, stubs, timeouts={"first_byte": 0.5, "total": 0.7}) as f, \
            pytest.raises(openai.APIStatusError) as info:
        f.ask({"order": ["slow1", "slow2", "never"]})
    assert info.value.status_code == 502
    assert "timeouts.total" in info.value.message
    assert stubs[0].count() == 1 and stubs[1].count() == 1
    assert stubs[2].count() == 0, "no attempt starts after the deadline"


class _ManualClock:
    """The health tracker's clock, moved only by the test (wall time never opens a cooldown)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_circuit_opens_then_recovers_through_a_probe(tmp_path: Path) -> None:
    state = {"down": True}
    shaky = Stub("shaky", plan=lambda _n: "500" if state["down"] else "ok")
    backup = Stub("backup")
    routing = {"breaker_failures": 3, "breaker_cooldown_s": 30}
    with fleet(tmp_path, [shaky, backup], routing=routing) as f:
        health = f.gateway.health
        clock = _ManualClock()
        health.clock = clock
        prefs = {"order": ["shaky", "backup"]}
        for _ in range(3):
            assert served_by(f.ask(prefs)) == "backup"
        assert shaky.count() == 3
        assert health.breaker_state((MODEL, "shaky")) == "open"
        for _ in range(5):
            assert served_by(f.ask(prefs)) == "backup"
        assert shaky.count() == 3, "an open circuit must not be called"
        clock.now += 29.9
        assert health.breaker_state((MODEL, "shaky")) == "open", "the cooldown has not elapsed yet"
        assert served_by(f.ask(prefs)) == "backup"
        # Recovery: the provider comes back; after the cooldown one request probes it.
        state["down"] = False
        clock.now += 0.2
        assert health.breaker_state((MODEL, "shaky")) == "half_open"
        assert served_by(f.ask(prefs)) == "shaky"  # the probe
        assert shaky.count() == 4
        assert health.breaker_state((MODEL, "shaky")) == "closed"
        assert served_by(f.ask(prefs)) == "shaky"
        snap = health.snapshot(MODEL, "shaky")
    assert snap is not None
    assert snap["uptime_last_5m"] == pytest.approx(100 * 2 / 5)  # 3 failures, 2 successes


def test_models_endpoint_reports_measured_health(tmp_path: Path) -> None:
    up, down = Stub("up"), Stub("down", plan=lambda n: "500" if n < 2 else "ok")
    with fleet(tmp_path, [up, down]) as f:
        for _ in range(4):
            f.ask({"order": ["down", "up"]})
        author, slug = MODEL.split("/")
        resp = httpx.get(f"{f.url}/api/v1/models/{author}/{slug}/endpoints",
                         headers={"Authorization": f"Bearer {f.key}"})
    assert resp.status_code == 200, resp.text
    rows = {e["provider_name"]: e for e in resp.json()["data"]["endpoints"]}
    assert rows["down"]["uptime_last_5m"] == 50.0  # 2 failures then 2 successes
    assert rows["up"]["uptime_last_5m"] == 100.0
    assert rows["down"]["latency_last_30m"]["p50"] > 0


def test_a_stream_that_stalls_after_its_first_bytes_ends_at_the_idle_bound_and_is_billed(tmp_path: Path) -> None:
    staller = Stub("staller", plan=lambda _n: "stall", chunks=6)
    with fleet(tmp_path, [staller], timeouts={"idle": 0.5}) as f:
        with f.client().chat.completions.with_streaming_response.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True) as resp:
            events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
        rows = f.generations()
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:2]) == " alpha beta"
    error_chunk, usage_chunk = chunks[-2], chunks[-1]
    assert error_chunk["choices"][0]["finish_reason"] == "error"
    assert "stream broke" in error_chunk["error"]["message"]
    assert usage_chunk["usage"]["completion_tokens"] > 0
    row = rows[0]
    assert row["status"] == "error" and row["cost_nanousd"] == usage_chunk["usage"]["tollway"]["cost_nanousd"] > 0
