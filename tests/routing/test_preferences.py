"""OpenRouter's ``provider`` object, ``models`` fallback, key policies and sticky sessions,
each over real sockets with the official SDK: the serving stub proves the rule held."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.routing.conftest import MODEL, Fleet, endpoint, fleet, served_by
from tests.routing.stubs import Stub
from tests.support.servers import new_key

PROVIDERS = {
    "cheap": {"hosting_country": "US", "data_retention": True},
    "mid": {"hosting_country": "DE"},
    "pricey": {"hosting_country": "FR"},
}
ENDPOINTS = [endpoint("cheap", 1, supports_tools=False, quantization="fp8"),
             endpoint("mid", 2, quantization="bf16", max_output_tokens=100),
             endpoint("pricey", 3, quantization="bf16")]
OTHER_MODEL = {"id": "deepseek/deepseek-v3.2", "author": "deepseek", "author_country": "CN",
               "endpoints": [{**endpoint("pricey", 0.25, 0.5), "model": "deepseek-v3.2"}]}


@pytest.fixture
def three(tmp_path: Path) -> Any:
    stubs = [Stub("cheap"), Stub("mid"), Stub("pricey")]
    with fleet(tmp_path, stubs, endpoints=ENDPOINTS, provider_extra=PROVIDERS, models=[OTHER_MODEL]) as f:
        yield f


def spread(f: Fleet, provider: dict[str, Any] | None, n: int = 20, **kwargs: Any) -> Counter[str]:
    return Counter(served_by(f.ask(provider, messages=[{"role": "user", "content": f"m{i}"}], **kwargs))
                   for i in range(n))


def test_default_load_balancing_favours_cheap_but_uses_others(three: Fleet) -> None:
    counts = spread(three, None, n=60)
    assert counts["cheap"] > counts["mid"] + counts["pricey"]
    assert counts["mid"] + counts["pricey"] > 0


def test_order_puts_named_providers_first(three: Fleet) -> None:
    assert spread(three, {"order": ["pricey", "mid"]}, n=10) == Counter({"pricey": 10})
    three.stubs["pricey"].plan = lambda _n: "500"
    assert spread(three, {"order": ["pricey", "mid"]}, n=3) == Counter({"mid": 3})


def test_only_restricts_to_listed_providers(three: Fleet) -> None:
    assert spread(three, {"only": ["mid"]}) == Counter({"mid": 20})
    three.stubs["mid"].plan = lambda _n: "500"
    with pytest.raises(openai.APIStatusError):
        three.ask({"only": ["mid"]})
    assert three.stubs["cheap"].count() == 0 and three.stubs["pricey"].count() == 0


def test_ignore_excludes_providers(three: Fleet) -> None:
    counts = spread(three, {"ignore": ["cheap"]}, n=30)
    assert counts["cheap"] == 0 and three.stubs["cheap"].count() == 0
    assert counts["mid"] > 0


def test_sort_by_price_is_deterministic_and_falls_back_in_price_order(three: Fleet) -> None:
    assert spread(three, {"sort": "price"}) == Counter({"cheap": 20})
    three.stubs["cheap"].plan = lambda _n: "503"
    assert served_by(three.ask({"sort": {"by": "price", "partition": "model"}})) == "mid"
    assert three.stubs["pricey"].count() == 0


def test_floor_suffix_sorts_by_price(three: Fleet) -> None:
    counts = spread(three, None, model=MODEL + ":floor")
    assert counts == Counter({"cheap": 20})


def test_sort_by_throughput_uses_measured_speed(three: Fleet) -> None:
    health = three.gateway.health
    for provider, tps in (("cheap", 20.0), ("mid", 200.0), ("pricey", 80.0)):
        health.record_throughput((MODEL, provider), int(tps), 1.0)
    assert spread(three, {"sort": "throughput"}, n=5) == Counter({"mid": 5})
    assert spread(three, None, n=5, model=MODEL + ":nitro") == Counter({"mid": 5})


def test_max_price_excludes_dearer_endpoints(three: Fleet) -> None:
    assert spread(three, {"max_price": {"prompt": 1.5}}) == Counter({"cheap": 20})
    with pytest.raises(openai.NotFoundError) as info:
        three.ask({"max_price": {"prompt": 0.5}})
    message = info.value.message
    assert "provider.max_price.prompt 0.5" in message
    assert all(f"{MODEL}@{p}" in message for p in ("cheap", "mid", "pricey"))


def test_allow_fallbacks_false_never_tries_others(three: Fleet) -> None:
    three.stubs["mid"].plan = lambda _n: "500"
    with pytest.raises(openai.APIStatusError) as info:
        three.ask({"order": ["mid"], "allow_fallbacks": False})
    assert info.value.status_code == 502
    assert three.stubs["cheap"].count() == 0 and three.stubs["pricey"].count() == 0
    # Without an order, only the first choice is tried.
    three.stubs["cheap"].plan = lambda _n: "500"
    with pytest.raises(openai.APIStatusError):
        three.ask({"sort": "price", "allow_fallbacks": False})
    assert three.stubs["cheap"].count() == 1 and three.stubs["pricey"].count() == 0


def test_models_fallback_answers_with_and_charges_the_fallback_model(three: Fleet) -> None:
    for stub in three.stubs.values():
        stub.plan = lambda _n: "500"
    pricey = three.stubs["pricey"]
    pricey.plan = lambda n: "500" if pricey.requests[n]["model"] == "pricey-kimi" else "ok"
    resp = three.ask({"sort": "price"}, extra_body={"models": ["deepseek/deepseek-v3.2"]})
    assert resp.model == "deepseek/deepseek-v3.2" and served_by(resp) == "pricey"
    assert pricey.requests[-1]["model"] == "deepseek-v3.2"
    usage = resp.usage
    assert usage is not None
    expected = (usage.prompt_tokens * 0.25 + usage.completion_tokens * 0.5) / 1e6
    assert resp.model_dump()["usage"]["cost"] == pytest.approx(expected)
    attempts = [(a["model"], a["provider"]) for a in three.generations()[-1]["attempts"]]
    assert attempts == [(MODEL, "cheap"), (MODEL, "mid"), (MODEL, "pricey"),
                        ("deepseek/deepseek-v3.2", "pricey")]


def test_tools_and_max_tokens_go_only_to_endpoints_that_support_them(three: Fleet) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    counts = spread(three, {"sort": "price"}, n=5, tools=tools)
    assert counts == Counter({"mid": 5}), "cheap does not support tools"
    counts = spread(three, {"only": ["mid", "pricey"]}, n=10, max_tokens=150)
    assert counts == Counter({"pricey": 10}), "mid caps output at 100 tokens"


def test_quantizations_and_data_collection(three: Fleet) -> None:
    assert set(spread(three, {"quantizations": ["fp8"]}, n=5)) == {"cheap"}
    assert "cheap" not in spread(three, {"data_collection": "deny"}, n=20)
    assert "cheap" not in spread(three, {"zdr": True}, n=20)


def test_key_policy_keeps_data_in_the_eu_and_requests_cannot_widen_it(three: Fleet) -> None:
    _, eu_key = new_key(three.database, name="eu-co", policy={"allowed_hosting_countries": ["EU"]})
    counts = Counter(served_by(three.ask(None, key=eu_key, messages=[{"role": "user", "content": str(i)}]))
                     for i in range(30))
    assert counts["cheap"] == 0 and counts["mid"] > 0, counts
    # Asking for the US explicitly narrows to nothing rather than widening the key's policy.
    with pytest.raises(openai.NotFoundError) as info:
        three.ask({"hosting_countries": ["US"]}, key=eu_key)
    assert "key policy allowed_hosting_countries (hosted in US)" in info.value.message
    # Even an explicit order naming the US provider cannot route around the key.
    assert served_by(three.ask({"order": ["cheap"]}, key=eu_key)) in {"mid", "pricey"}
    # A request may narrow further within the key: only France.
    assert spread(three, {"hosting_countries": ["FR"]}, n=5, key=eu_key) == Counter({"pricey": 5})


def test_key_policy_on_origin_countries_and_price(three: Fleet) -> None:
    _, key = new_key(three.database, name="no-cn", policy={"denied_origin_countries": ["CN"]})
    with pytest.raises(openai.NotFoundError) as info:
        three.ask(None, key=key)
    assert "key policy denied_origin_countries (model from CN)" in info.value.message
    _, key = new_key(three.database, name="frugal", policy={"max_price": {"prompt": "2"},
                                                            "no_data_retention": True})
    assert spread(three, None, n=10, key=key) == Counter({"mid": 10})


def test_sticky_session_stays_on_the_provider_that_served_it(three: Fleet) -> None:
    def turn(session: str | None, first: str) -> str:
        client = three.client(**({"x-session-id": session} if session else {}))
        return served_by(client.chat.completions.create(
            model=MODEL, messages=[{"role": "system", "content": "agent"},
                                   {"role": "user", "content": first}]))

    # Twenty conversations spread over providers, but each keeps its provider turn after turn.
    for i in range(20):
        firsts = {turn(f"s{i}", f"task {i}") for _ in range(4)}
        assert len(firsts) == 1, f"session s{i} hopped providers: {firsts}"
    # Without a session id, the conversation's first messages identify it.
    assert len({turn(None, "same conversation") for _ in range(6)}) == 1
    used = Counter(turn(f"x{i}", f"other {i}") for i in range(40))
    assert len(used) > 1, "stickiness must not disable load balancing across conversations"
