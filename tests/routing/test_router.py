"""The router and health tracker as units: weighting, demotion, breaker, policies, errors."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tollway.auth import Principal
from tollway.catalog import build_catalog
from tollway.config import RoutingSettings, parse_settings
from tollway.errors import BadRequest, NoEndpointAvailable, PermissionDenied
from tollway.ledger.keys import KeyInfo
from tollway.ledger.schema import utcnow
from tollway.routing import HealthTracker, KeyPolicy, NoEndpointMatches, Router, parse_policy
from tollway.routing.health import HEALTHY, OPEN, PROBE, UNSTABLE
from tollway.routing.policy import PolicyError

MODEL = "moonshotai/kimi-k2.5"
ANON = Principal(key=None, is_admin=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def make_router(prices: dict[str, float], *, seed: int = 7, clock: Clock | None = None,
                **routing: Any) -> Router:
    settings = parse_settings({
        "catalog": False,
        "providers": [{"name": n, "base_url": f"http://127.0.0.1:1/{n}", "api_key": "k"} for n in prices],
        "models": [{"id": MODEL, "author_country": "CN", "endpoints": [
            {"provider": n, "model": n, "pricing": {"prompt": str(p), "completion": str(p)}}
            for n, p in prices.items()]}],
        "routing": {"seed": seed, **routing},
    })
    health = HealthTracker(settings.routing, clock or Clock())
    return Router(build_catalog(settings, env={}), settings.routing, health)


def body(**provider: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "x"}]}
    if provider:
        out["provider"] = provider
    return out


def providers(router: Router, b: dict[str, Any], principal: Principal = ANON) -> list[str]:
    return [t.provider.name for t in router.plan(b, principal)]


def key_with(policy: dict[str, Any]) -> Principal:
    info = KeyInfo(id="key_1", name="k", label=None, key_prefix="sk-tw-x", created_at=utcnow(),
                   revoked_at=None, expires_at=None, limit_nanousd=None, limit_reset=None, rpm=None,
                   tpm=None, allowed_models=None, policy=policy, country=None, usage_nanousd=0,
                   is_admin=False)
    return Principal(key=info)


def test_first_choice_is_weighted_by_inverse_square_price() -> None:
    router = make_router({"one": 0.5, "three": 1.5})  # blended $1 vs $3
    firsts = Counter(providers(router, body())[0] for _ in range(20_000))
    ratio = firsts["one"] / firsts["three"]
    assert 8.0 < ratio < 10.0, ratio  # expected 9
    # The fallbacks follow cheapest first.
    assert providers(make_router({"a": 3, "b": 1, "c": 2}, seed=1), body(sort="price")) == ["b", "c", "a"]


def test_seed_makes_the_plan_reproducible() -> None:
    plans = [[providers(make_router({"a": 1, "b": 1, "c": 1}, seed=3), body())[0] for _ in range(1)]
             for _ in range(2)]
    assert plans[0] == plans[1]
    r1, r2 = make_router({"a": 1, "b": 1, "c": 1}, seed=3), make_router({"a": 1, "b": 1, "c": 1}, seed=3)
    assert [providers(r1, body()) for _ in range(20)] == [providers(r2, body()) for _ in range(20)]


def test_recent_outage_puts_an_endpoint_last() -> None:
    clock = Clock()
    router = make_router({"cheap": 1, "dear": 3}, clock=clock)
    for _ in range(3):
        router.health.record((MODEL, "cheap"), False)
    assert router.health.verdict((MODEL, "cheap"), clock.now) == UNSTABLE
    assert all(providers(router, body())[-1] == "cheap" for _ in range(50))
    clock.now += 31  # the outage window has passed
    assert router.health.verdict((MODEL, "cheap"), clock.now) == HEALTHY
    # Rate limits count as a brief outage but not against uptime.
    for _ in range(3):
        router.health.record((MODEL, "dear"), False, rate_limited=True)
    assert router.health.verdict((MODEL, "dear"), clock.now) == UNSTABLE
    router.health.record((MODEL, "dear"), True)
    assert router.health.uptime((MODEL, "dear"), 300, clock.now) == 100.0


def test_breaker_opens_half_opens_with_one_probe_and_closes() -> None:
    clock = Clock()
    router = make_router({"a": 1, "b": 2}, clock=clock, breaker_failures=3, breaker_cooldown_s=10)
    health, key = router.health, (MODEL, "a")
    for _ in range(3):
        health.record(key, False)
    assert health.verdict(key, clock.now) == OPEN
    assert providers(router, body()) == ["b"]
    clock.now += 10
    assert providers(router, body()) == ["a", "b"], "the half-open endpoint is probed first"
    assert providers(router, body()) == ["b"], "only one probe at a time"
    health.record(key, False)  # the probe failed: open again for a full cooldown
    clock.now += 9
    assert health.verdict(key, clock.now) == OPEN
    clock.now += 1
    assert health.verdict(key, clock.now) == PROBE
    health.record(key, True)
    assert health.breaker_state(key) == "closed"
    # Closed, but its failures are still inside the outage window: tried, though last.
    assert health.verdict(key, clock.now) == UNSTABLE
    assert providers(router, body()) == ["b", "a"]
    clock.now += 31
    assert health.verdict(key, clock.now) == HEALTHY


def test_breaker_opens_on_error_rate() -> None:
    clock = Clock()
    health = make_router({"a": 1}, clock=clock, breaker_failures=100, breaker_window=10,
                         breaker_min_samples=10, breaker_error_rate=0.5).health
    key = (MODEL, "a")
    for i in range(9):
        health.record(key, i % 2 == 0)  # 5 ok, 4 failed
    assert health.breaker_state(key) == "closed"
    health.record(key, False)  # 5 of 10
    assert health.breaker_state(key) == "open"


def test_every_provider_open_is_a_503_with_retry_after() -> None:
    router = make_router({"a": 1}, breaker_failures=1, breaker_cooldown_s=7)
    router.health.record((MODEL, "a"), False)
    with pytest.raises(NoEndpointAvailable) as info:
        router.plan(body(), ANON)
    assert info.value.status == 503 and info.value.headers["Retry-After"] == "7"


def test_snapshot_reports_uptime_latency_and_throughput() -> None:
    clock = Clock()
    health = HealthTracker(RoutingSettings(), clock)
    key = (MODEL, "a")
    assert health.snapshot(*key) is None
    for i in range(10):
        health.record(key, True, latency_s=0.1 * (i + 1))
        health.record_throughput(key, 10 * (i + 1), 1.0)
    health.record(key, False)
    clock.now += 600  # ten minutes later: out of the 5 min window, inside 30 min
    health.record(key, True, latency_s=2.0)
    snap = health.snapshot(*key)
    assert snap is not None
    assert snap["uptime_last_5m"] == 100.0
    assert snap["uptime_last_30m"] == pytest.approx(100 * 11 / 12, abs=0.01)
    assert snap["uptime_last_1d"] == snap["uptime_last_30m"]
    assert snap["latency_last_30m"]["p50"] == pytest.approx(600.0)  # ms
    assert snap["latency_last_30m"]["p99"] == pytest.approx(2000.0)
    assert snap["throughput_last_30m"]["p50"] == pytest.approx(50.0)
    clock.now += 1801  # every sample is older than 30 minutes now
    snap = health.snapshot(*key)
    assert snap is not None and snap["latency_last_30m"] is None and snap["uptime_last_5m"] is None
    assert snap["uptime_last_1d"] == pytest.approx(100 * 11 / 12, abs=0.01)


def test_preferred_thresholds_deprioritise_without_excluding() -> None:
    clock = Clock()
    router = make_router({"fast": 3, "slow": 1}, clock=clock)
    router.health.record_throughput((MODEL, "fast"), 100, 1.0)
    router.health.record_throughput((MODEL, "slow"), 10, 1.0)
    assert all(providers(router, body(preferred_min_throughput=50)) == ["fast", "slow"] for _ in range(20))
    router.health.record((MODEL, "slow"), True, latency_s=5.0)
    router.health.record((MODEL, "fast"), True, latency_s=0.2)
    clock.now += 1  # routing reads percentiles refreshed once a second
    assert all(providers(router, body(preferred_max_latency={"p50": 1})) == ["fast", "slow"]
               for _ in range(20))
    # Without the preference, the cheap one is usually first.
    assert Counter(providers(router, body())[0] for _ in range(50))["slow"] > 25


def test_errors_name_the_constraint() -> None:
    router = make_router({"a": 1, "b": 2})
    with pytest.raises(NoEndpointMatches) as info:
        router.plan(body(only=["a"], ignore=["a"]), ANON)
    assert info.value.status == 404
    assert f"{MODEL}@a: in provider.ignore" in info.value.message
    assert f"{MODEL}@b: not in provider.only" in info.value.message
    with pytest.raises(BadRequest, match=r"provider\.sort must be one of"):
        router.plan(body(sort="fastest"), ANON)
    with pytest.raises(BadRequest, match="not a provider preference"):
        router.plan(body(oder=["a"]), ANON)
    with pytest.raises(BadRequest, match="not an ISO 3166"):
        router.plan(body(hosting_countries=["Germany"]), ANON)


def test_invalid_key_policy_fails_closed() -> None:
    router = make_router({"a": 1})
    with pytest.raises(PermissionDenied, match="allowed_hosting_countres"):
        router.plan(body(), key_with({"allowed_hosting_countres": ["DE"]}))


def test_policies_only_narrow() -> None:
    key = parse_policy({"allowed_hosting_countries": ["EU"], "denied_origin_countries": ["CN"],
                        "max_price": {"prompt": "2"}})
    request = parse_policy({"allowed_hosting_countries": ["DE", "US"], "max_price": {"prompt": "5"},
                            "no_data_retention": True})
    both = key.narrow(request)
    assert both.allowed_hosting_countries == frozenset({"DE"})
    assert both.denied_origin_countries == frozenset({"CN"})
    assert both.max_price.prompt == 2 and both.no_data_retention
    assert key.narrow(KeyPolicy()) is key
    assert both.to_json()["allowed_hosting_countries"] == ["DE"]
    with pytest.raises(PolicyError, match="unknown field"):
        parse_policy({"deny": ["CN"]})
