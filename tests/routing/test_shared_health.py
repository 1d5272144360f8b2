"""Health shared through Redis (real server at 127.0.0.1:6379; fails loudly when absent)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import redis

from tollway.config import RoutingSettings
from tollway.routing import build_health
from tollway.routing.health import HEALTHY, OPEN, UNSTABLE
from tollway.routing.shared import RedisHealthTracker

URL = "redis://127.0.0.1:6379/0"
KEY = ("moonshotai/kimi-k2.5", "together")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pair() -> Iterator[tuple[RedisHealthTracker, RedisHealthTracker, Clock]]:
    prefix = f"tollway:test:{secrets.token_hex(4)}:"
    clock = Clock()
    settings = RoutingSettings(breaker_failures=3, breaker_cooldown_s=20)
    a = RedisHealthTracker(settings, URL, prefix=prefix, clock=clock, start_thread=False)
    b = RedisHealthTracker(settings, URL, prefix=prefix, clock=clock, start_thread=False)
    yield a, b, clock
    conn = redis.Redis.from_url(URL)
    keys = list(conn.scan_iter(prefix + "*"))
    if keys:
        conn.delete(*keys)
    conn.close()
    for t in (a, b):
        t.close()


def test_a_breaker_opened_by_one_replica_is_respected_by_another(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, clock = pair
    for _ in range(3):
        a.record(KEY, False)
    assert a.verdict(KEY, clock.now) == OPEN and b.verdict(KEY, clock.now) == HEALTHY
    a.flush()
    b.flush()
    assert b.verdict(KEY, clock.now) == OPEN
    clock.now += 21
    b.flush()
    assert b.verdict(KEY, clock.now) != OPEN


def test_outages_and_uptime_are_fleet_wide(pair) -> None:  # type: ignore[no-untyped-def]
    a, b, clock = pair
    settings_window = a.settings.outage_window_s
    a.record(KEY, False)
    a.record(KEY, False)
    b.record(KEY, False, rate_limited=True)  # counts for the outage, not for uptime
    b.record(KEY, True, latency_s=0.5)
    b.record(KEY, True, latency_s=1.5)
    b.record_throughput(KEY, 100, 2.0)
    # Neither replica alone saw 3 failures; together they did.
    assert a.verdict(KEY, clock.now) == HEALTHY and b.verdict(KEY, clock.now) == HEALTHY
    a.flush()
    b.flush()
    a.flush()
    assert a.verdict(KEY, clock.now) == UNSTABLE and b.verdict(KEY, clock.now) == UNSTABLE
    a.pull_reports()
    snap = a.snapshot(*KEY)
    assert snap is not None
    assert snap["uptime_last_5m"] == 50.0  # 2 ok of 4, the 429 excluded
    assert snap["latency_last_30m"]["p50"] == pytest.approx(500.0)
    assert snap["throughput_last_30m"]["p50"] == pytest.approx(50.0)
    clock.now += settings_window + 11
    a.flush()
    assert a.verdict(KEY, clock.now) == HEALTHY


def test_redis_is_used_only_when_configured() -> None:
    assert type(build_health(RoutingSettings(), None)).__name__ == "HealthTracker"
    tracker = build_health(RoutingSettings(), URL)
    assert isinstance(tracker, RedisHealthTracker)
    tracker.close()
