"""Per-endpoint health: circuit breaker, recent outages, uptime, latency and throughput.

Everything here is on the request path, so recording an outcome is a handful of integer
updates and reading a verdict is usually one comparison: a healthy endpoint that has not
failed within the outage window is never scanned.  Percentiles and uptimes are computed
only for ``snapshot()`` (the models endpoint) and, at most once a second, for routing by
latency or throughput.

Endpoints are keyed by ``(model id, provider name)``.  Rate-limited answers (429) count
as a brief outage for routing but never against uptime or the breaker: the provider is
up, just busy.

:class:`HealthTracker` is per process; :class:`tollway.routing.shared.RedisHealthTracker`
shares the same state between workers and replicas through Redis.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from tollway.config import RoutingSettings

EndpointKey = tuple[str, str]  # (model id, provider name)

# Verdicts of HealthTracker.verdict(), best first.
HEALTHY, PROBE, UNSTABLE, OPEN = 0, 1, 2, 3

_CLOSED, _OPEN, _HALF_OPEN = 0, 1, 2
_SECONDS = 64  # per-second ring, covers the outage window (<= 60 s)
_MINUTES = 1440  # per-minute ring: one day of uptime
_STATS_WINDOW_S = 1800.0  # latency/throughput "last 30 minutes"
_PERCENTILES = (("p50", 0.50), ("p75", 0.75), ("p90", 0.90), ("p99", 0.99))


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    index = min(len(sorted_values) - 1, max(0, int(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


class _Ring:
    """Success/failure counts per time bucket, bucket = int(t / width) modulo size."""

    __slots__ = ("epoch", "fail", "ok", "size", "width")

    def __init__(self, size: int, width: float) -> None:
        self.size, self.width = size, width
        self.epoch = [-1] * size
        self.ok = [0] * size
        self.fail = [0] * size

    def add(self, now: float, ok: int, fail: int) -> None:
        bucket = int(now // self.width)
        i = bucket % self.size
        if self.epoch[i] != bucket:
            self.epoch[i], self.ok[i], self.fail[i] = bucket, 0, 0
        self.ok[i] += ok
        self.fail[i] += fail

    def totals(self, now: float, span_s: float) -> tuple[int, int]:
        current = int(now // self.width)
        first = current - max(1, int(span_s // self.width)) + 1
        ok = fail = 0
        for i in range(self.size):
            if first <= self.epoch[i] <= current:
                ok += self.ok[i]
                fail += self.fail[i]
        return ok, fail


class EndpointStats:
    """The mutable health record of one endpoint (owned by one tracker, one event loop)."""

    __slots__ = ("breaker", "consecutive", "last_fail_at", "latency", "minutes", "open_until",
                 "outage_at", "outage_verdict", "pct_at", "pct_latency", "pct_throughput",
                 "probe_until", "recent", "recent_fails", "seconds", "throughput")

    def __init__(self, samples: int, window: int) -> None:
        self.seconds = _Ring(_SECONDS, 1.0)
        self.minutes = _Ring(_MINUTES, 60.0)
        self.breaker = _CLOSED
        self.consecutive = 0
        self.recent: deque[bool] = deque(maxlen=window)  # True = failure
        self.recent_fails = 0
        self.open_until = 0.0
        self.probe_until = 0.0
        self.last_fail_at = -1e18
        self.outage_at = -1e18  # when outage_verdict was computed
        self.outage_verdict = False
        self.latency: deque[tuple[float, float]] = deque(maxlen=samples)  # (t, seconds to first token)
        self.throughput: deque[tuple[float, float]] = deque(maxlen=samples)  # (t, tokens/s)
        self.pct_at = -1e18  # when pct_* were computed (routing reads them, refreshed each second)
        self.pct_latency: dict[str, float] = {}
        self.pct_throughput: dict[str, float] = {}


class HealthTracker:
    """In-process health of every endpoint this process has called."""

    def __init__(self, settings: RoutingSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self._stats: dict[EndpointKey, EndpointStats] = {}

    def _get(self, key: EndpointKey) -> EndpointStats:
        stats = self._stats.get(key)
        if stats is None:
            stats = self._stats[key] = EndpointStats(self.settings.stats_samples,
                                                     self.settings.breaker_window)
        return stats

    # -- recording (hot path) --------------------------------------------------------------

    def record(self, key: EndpointKey, ok: bool, *, rate_limited: bool = False,
               latency_s: float | None = None) -> None:
        """One attempt's outcome; ``latency_s`` is the time to the first token."""
        now = self.clock()
        stats = self._get(key)
        if rate_limited:
            stats.seconds.add(now, 0, 1)
            stats.last_fail_at = now
            stats.outage_at = -1e18
            return
        stats.seconds.add(now, int(ok), int(not ok))
        stats.minutes.add(now, int(ok), int(not ok))
        if latency_s is not None and ok:
            stats.latency.append((now, latency_s))
        self._breaker(stats, ok, now)

    def record_throughput(self, key: EndpointKey, tokens: int, seconds: float) -> None:
        """Tokens per second of one generation, measured after its first token."""
        if tokens > 0 and seconds > 0:
            self._get(key).throughput.append((self.clock(), tokens / seconds))

    def _breaker(self, stats: EndpointStats, ok: bool, now: float) -> None:
        s = self.settings
        recent = stats.recent
        if len(recent) == recent.maxlen and recent[0]:
            stats.recent_fails -= 1
        recent.append(not ok)
        if ok:
            stats.consecutive = 0
            if stats.breaker != _CLOSED:
                self._set_closed(stats)
            return
        stats.recent_fails += 1
        stats.consecutive += 1
        stats.last_fail_at = now
        stats.outage_at = -1e18  # recompute the outage verdict on next read
        if stats.breaker == _HALF_OPEN:
            self._set_open(stats, now)  # the probe failed
        elif stats.breaker == _CLOSED and (
                stats.consecutive >= s.breaker_failures
                or (len(recent) >= s.breaker_min_samples
                    and stats.recent_fails >= s.breaker_error_rate * len(recent))):
            self._set_open(stats, now)

    def _set_open(self, stats: EndpointStats, now: float) -> None:
        stats.breaker = _OPEN
        stats.open_until = now + self.settings.breaker_cooldown_s
        stats.probe_until = 0.0

    def _set_closed(self, stats: EndpointStats) -> None:
        stats.breaker = _CLOSED
        stats.consecutive = 0
        stats.recent.clear()
        stats.recent_fails = 0

    # -- verdicts (hot path) --------------------------------------------------------------

    def verdict(self, key: EndpointKey, now: float) -> int:
        """HEALTHY, PROBE (half-open: this request may test it; claimed), UNSTABLE or OPEN."""
        stats = self._stats.get(key)
        if stats is None:
            return HEALTHY
        if stats.breaker != _CLOSED:
            if stats.breaker == _OPEN:
                if now < stats.open_until:
                    return OPEN
                stats.breaker = _HALF_OPEN
            if now < stats.probe_until:
                return OPEN  # another request is probing it
            # One probe at a time; a probe that never reports back frees the slot after a cooldown.
            stats.probe_until = now + self.settings.breaker_cooldown_s
            return PROBE
        return UNSTABLE if self._in_outage(stats, now) else HEALTHY

    def _in_outage(self, stats: EndpointStats, now: float) -> bool:
        s = self.settings
        if now - stats.last_fail_at > s.outage_window_s:
            return False
        if now - stats.outage_at < 1.0:
            return stats.outage_verdict
        ok, fail = stats.seconds.totals(now, s.outage_window_s)
        stats.outage_verdict = fail >= s.outage_min_failures and fail >= s.outage_error_rate * (ok + fail)
        stats.outage_at = now
        return stats.outage_verdict

    def p50(self, key: EndpointKey, now: float) -> tuple[float | None, float | None]:
        """(p50 seconds to first token, p50 tokens/s) over the last 30 min; refreshed once a second."""
        latency, throughput = self.cached_percentiles(key, now)
        return latency.get("p50"), throughput.get("p50")

    def cached_percentiles(self, key: EndpointKey, now: float) -> tuple[dict[str, float], dict[str, float]]:
        """:meth:`percentiles`, recomputed at most once a second (routing reads it per request)."""
        stats = self._stats.get(key)
        if stats is None:
            return {}, {}
        if now - stats.pct_at >= 1.0:
            stats.pct_at = now
            stats.pct_latency, stats.pct_throughput = self.percentiles(key, now)
        return stats.pct_latency, stats.pct_throughput

    def percentiles(self, key: EndpointKey, now: float) -> tuple[dict[str, float], dict[str, float]]:
        """Latency (seconds) and throughput (tokens/s) percentiles over the last 30 minutes."""
        stats = self._stats.get(key)
        if stats is None:
            return {}, {}
        lat = self._window(stats.latency, now)
        tps = self._window(stats.throughput, now)
        return ({n: percentile(lat, q) for n, q in _PERCENTILES} if lat else {},
                {n: percentile(tps, q) for n, q in _PERCENTILES} if tps else {})

    @staticmethod
    def _window(samples: deque[tuple[float, float]], now: float) -> list[float]:
        cutoff = now - _STATS_WINDOW_S
        return sorted(v for t, v in samples if t >= cutoff)

    def breaker_state(self, key: EndpointKey) -> str:
        """``closed``, ``open`` or ``half_open`` (for tests and diagnostics)."""
        stats = self._stats.get(key)
        if stats is None:
            return "closed"
        if stats.breaker == _OPEN and self.clock() >= stats.open_until:
            return "half_open"
        return ("closed", "open", "half_open")[stats.breaker]

    # -- reporting (off the hot path) -------------------------------------------------------

    def uptime(self, key: EndpointKey, span_s: float, now: float) -> float | None:
        """Percentage of non-rate-limited attempts that succeeded, or None without data."""
        stats = self._stats.get(key)
        if stats is None:
            return None
        ok, fail = stats.minutes.totals(now, span_s)
        return None if ok + fail == 0 else round(100.0 * ok / (ok + fail), 2)

    def snapshot(self, model_id: str, provider: str) -> dict[str, Any] | None:
        """OpenRouter's endpoint health fields, or None when nothing was measured.

        ``uptime_last_5m|30m|1d`` are percentages; ``latency_last_30m`` (milliseconds to
        the first token) and ``throughput_last_30m`` (tokens/s) map p50/p75/p90/p99.
        """
        key = (model_id, provider)
        if key not in self._stats:
            return None
        now = self.clock()
        latency, throughput = self.percentiles(key, now)
        return {
            "uptime_last_5m": self.uptime(key, 300, now),
            "uptime_last_30m": self.uptime(key, 1800, now),
            "uptime_last_1d": self.uptime(key, 86400, now),
            "latency_last_30m": {k: round(v * 1000, 1) for k, v in latency.items()} or None,
            "throughput_last_30m": {k: round(v, 1) for k, v in throughput.items()} or None,
            "breaker": self.breaker_state(key),
        }

    def endpoint_health(self, model_id: str, provider: str) -> Any:
        """The snapshot as ``tollway.catalog.openrouter_schema.EndpointHealth`` (models API)."""
        snap = self.snapshot(model_id, provider)
        if snap is None:
            return None
        from tollway.catalog.openrouter_schema import EndpointHealth  # the catalog's renderer type

        snap.pop("breaker")
        return EndpointHealth(**snap)

    def close(self) -> None:
        """Nothing to release in-process; the Redis variant flushes here."""


def build_health(settings: RoutingSettings, redis_url: str | None) -> HealthTracker:
    """The in-process tracker, or the Redis-shared one when ``redis`` is configured."""
    if redis_url:
        from tollway.routing.shared import RedisHealthTracker

        return RedisHealthTracker(settings, redis_url)
    return HealthTracker(settings)
