"""Endpoint health shared between workers and replicas through Redis.

Each process keeps the in-process :class:`~tollway.routing.health.HealthTracker` for its
hot path and queues its outcomes; a background thread publishes them to Redis every
``routing.redis_flush_s`` (one pipeline, a handful of commands whatever the traffic) and
pulls back what the whole fleet saw:

* breakers opened anywhere (``{prefix}open``: endpoint -> open until), so one replica's
  discovery that a provider is down spares the others the failures;
* failures in the outage window (``{prefix}s:{10-second bucket}``), so every replica
  sees an outage the fleet as a whole is experiencing;
* uptime counters per minute and hour, and recent latency/throughput samples, so the
  models endpoint reports fleet-wide figures (pulled every ~10 s).

A Redis failure never fails a request: the process keeps routing on its own view and
retries the publish on the next tick.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import redis

from tollway.config import RoutingSettings
from tollway.routing.health import (
    _PERCENTILES,
    _STATS_WINDOW_S,
    HEALTHY,
    OPEN,
    UNSTABLE,
    EndpointKey,
    EndpointStats,
    HealthTracker,
    percentile,
)

log = logging.getLogger("tollway.routing")

_OUTAGE_BUCKET_S = 10
_PULL_REPORTS_EVERY = 10  # flushes between pulls of uptime/latency (about 10 s)
_OK, _FAIL, _LIMITED, _LATENCY, _THROUGHPUT, _OPENED, _CLOSED = range(7)


def _ep(key: EndpointKey) -> str:
    return f"{key[0]}|{key[1]}"


def _key(ep: str) -> EndpointKey:
    model, _, provider = ep.rpartition("|")
    return model, provider


class RedisHealthTracker(HealthTracker):
    """A :class:`HealthTracker` whose verdicts and reports include the other replicas'."""

    def __init__(self, settings: RoutingSettings, url: str, *, prefix: str = "tollway:health:",
                 clock: Callable[[], float] = time.time, start_thread: bool = True) -> None:
        super().__init__(settings, clock)
        self.prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        # deque append/popleft are thread-safe: the event loop appends, the flusher pops.
        self._events: deque[tuple[int, EndpointKey, float, float]] = deque(maxlen=100_000)
        self._remote_open: dict[EndpointKey, float] = {}
        self._remote_outage: frozenset[EndpointKey] = frozenset()
        self._reports: dict[EndpointKey, dict[str, Any]] = {}
        self._flushes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_thread = start_thread

    # -- recording: local first, then queued for Redis ----------------------------------------

    def record(self, key: EndpointKey, ok: bool, *, rate_limited: bool = False,
               latency_s: float | None = None) -> None:
        super().record(key, ok, rate_limited=rate_limited, latency_s=latency_s)
        now = self.clock()
        kind = _LIMITED if rate_limited else (_OK if ok else _FAIL)
        self._events.append((kind, key, now, 0.0))
        if latency_s is not None and ok:
            self._events.append((_LATENCY, key, now, latency_s))
        self._ensure_thread()

    def record_throughput(self, key: EndpointKey, tokens: int, seconds: float) -> None:
        super().record_throughput(key, tokens, seconds)
        if tokens > 0 and seconds > 0:
            self._events.append((_THROUGHPUT, key, self.clock(), tokens / seconds))

    def _set_open(self, stats: EndpointStats, now: float) -> None:
        super()._set_open(stats, now)
        key = next((k for k, v in self._stats.items() if v is stats), None)
        if key is not None:
            self._events.append((_OPENED, key, now, stats.open_until))

    def _set_closed(self, stats: EndpointStats) -> None:
        super()._set_closed(stats)
        key = next((k for k, v in self._stats.items() if v is stats), None)
        if key is not None:
            self._events.append((_CLOSED, key, self.clock(), 0.0))

    # -- verdicts: the fleet's view merged in ------------------------------------------------

    def verdict(self, key: EndpointKey, now: float) -> int:
        local = super().verdict(key, now)
        if local == HEALTHY:
            until = self._remote_open.get(key)
            if until is not None and now < until:
                return OPEN
            if key in self._remote_outage:
                return UNSTABLE
        return local

    def uptime(self, key: EndpointKey, span_s: float, now: float) -> float | None:
        report = self._reports.get(key)
        if report is None:
            return super().uptime(key, span_s, now)
        ok, fail = report["uptime"].get(span_s, (0, 0))
        return None if ok + fail == 0 else round(100.0 * ok / (ok + fail), 2)

    def percentiles(self, key: EndpointKey, now: float) -> tuple[dict[str, float], dict[str, float]]:
        report = self._reports.get(key)
        if report is None:
            return super().percentiles(key, now)
        return report["latency"], report["throughput"]

    def snapshot(self, model_id: str, provider: str) -> dict[str, Any] | None:
        if (model_id, provider) in self._reports and (model_id, provider) not in self._stats:
            self._get((model_id, provider))  # seen by the fleet only: report it all the same
        return super().snapshot(model_id, provider)

    # -- the flusher ----------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None and self._start_thread:
            self._thread = threading.Thread(target=self._run, name="tollway-health", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.redis_flush_s):
            try:
                self.flush()
            except redis.RedisError as exc:
                log.warning("shared health: Redis unavailable (%s); routing on local health", exc)

    def flush(self) -> None:
        """Publish queued outcomes and pull the fleet's view (one pipeline; also for tests)."""
        now = self.clock()
        counts: dict[tuple[str, str], int] = defaultdict(int)
        samples: dict[str, list[str]] = defaultdict(list)
        opened: dict[str, float] = {}
        closed: set[str] = set()
        while self._events:
            kind, key, t, value = self._events.popleft()
            ep = _ep(key)
            if kind in (_OK, _FAIL, _LIMITED):
                field = ("ok", "fail", "limited")[kind]
                counts[(f"s:{int(t // _OUTAGE_BUCKET_S)}", f"{ep}|{field}")] += 1
                if kind != _LIMITED:  # rate limits never count against uptime
                    counts[(f"m:{int(t // 60)}", f"{ep}|{field}")] += 1
                    counts[(f"h:{int(t // 3600)}", f"{ep}|{field}")] += 1
            elif kind in (_LATENCY, _THROUGHPUT):
                samples[f"{'lat' if kind == _LATENCY else 'tps'}:{ep}"].append(f"{t:.3f}:{value:.4f}")
            elif kind == _OPENED:
                opened[ep] = value
                closed.discard(ep)
            else:
                closed.add(ep)
                opened.pop(ep, None)
        p = self.prefix
        ttl = {"s": 120, "m": 1860, "h": 90_000}
        pipe = self._redis.pipeline(transaction=False)
        for (bucket, field), n in counts.items():
            pipe.hincrby(p + bucket, field, n)
            pipe.expire(p + bucket, ttl[bucket[0]])
        for name, values in samples.items():
            pipe.rpush(p + name, *values)
            pipe.ltrim(p + name, -self.settings.stats_samples, -1)
            pipe.expire(p + name, int(_STATS_WINDOW_S))
            pipe.sadd(p + "endpoints", name.split(":", 1)[1])
        if opened:
            pipe.hset(p + "open", mapping={ep: f"{until:.3f}" for ep, until in opened.items()})
        if closed:
            pipe.hdel(p + "open", *closed)
        pipe.hgetall(p + "open")
        current = int(now // _OUTAGE_BUCKET_S)
        span = int(self.settings.outage_window_s // _OUTAGE_BUCKET_S) + 1
        for b in range(current - span + 1, current + 1):
            pipe.hgetall(f"{p}s:{b}")
        results = pipe.execute()
        outage_hashes = results[-span:]
        self._remote_open = {_key(ep.decode()): float(until) for ep, until in results[-span - 1].items()
                             if float(until) > now}
        self._remote_outage = self._outages(outage_hashes)
        self._flushes += 1
        if self._flushes % _PULL_REPORTS_EVERY == 1:
            self.pull_reports()

    def _outages(self, hashes: list[dict[bytes, bytes]]) -> frozenset[EndpointKey]:
        ok: dict[str, int] = defaultdict(int)
        fail: dict[str, int] = defaultdict(int)
        for h in hashes:
            for field, n in h.items():
                ep, _, kind = field.decode().rpartition("|")
                (ok if kind == "ok" else fail)[ep] += int(n)
        s = self.settings
        return frozenset(_key(ep) for ep, f in fail.items()
                         if f >= s.outage_min_failures and f >= s.outage_error_rate * (f + ok[ep]))

    def pull_reports(self) -> None:
        """Fleet-wide uptime (5 min, 30 min, 1 day) and latency/throughput samples."""
        now = self.clock()
        p = self.prefix
        minute, hour = int(now // 60), int(now // 3600)
        pipe = self._redis.pipeline(transaction=False)
        for m in range(minute - 29, minute + 1):
            pipe.hgetall(f"{p}m:{m}")
        for h in range(hour - 23, hour + 1):
            pipe.hgetall(f"{p}h:{h}")
        pipe.smembers(p + "endpoints")
        results = pipe.execute()
        endpoints = sorted(e.decode() for e in results[-1])
        pipe = self._redis.pipeline(transaction=False)
        for ep in endpoints:
            pipe.lrange(f"{p}lat:{ep}", 0, -1)
            pipe.lrange(f"{p}tps:{ep}", 0, -1)
        lists = pipe.execute() if endpoints else []
        reports: dict[EndpointKey, dict[str, Any]] = {}

        def report(ep: str) -> dict[str, Any]:
            key = _key(ep)
            if key not in reports:
                reports[key] = {"uptime": {300: (0, 0), 1800: (0, 0), 86400: (0, 0)},
                                "latency": {}, "throughput": {}}
            return reports[key]

        for i, h in enumerate(results[:30]):
            spans = (300, 1800) if i >= 25 else (1800,)
            for field, n in h.items():
                ep, _, kind = field.decode().rpartition("|")
                up = report(ep)["uptime"]
                for span in spans:
                    ok, fail = up[span]
                    up[span] = (ok + int(n), fail) if kind == "ok" else (ok, fail + int(n))
        for h in results[30:54]:
            for field, n in h.items():
                ep, _, kind = field.decode().rpartition("|")
                up = report(ep)["uptime"]
                ok, fail = up[86400]
                up[86400] = (ok + int(n), fail) if kind == "ok" else (ok, fail + int(n))
        cutoff = now - _STATS_WINDOW_S
        for i, ep in enumerate(endpoints):
            for name, raw in (("latency", lists[2 * i]), ("throughput", lists[2 * i + 1])):
                values = sorted(float(v) for t, v in (x.decode().split(":") for x in raw) if float(t) >= cutoff)
                if values:
                    report(ep)[name] = {n: percentile(values, q) for n, q in _PERCENTILES}
        self._reports = reports

    def close(self) -> None:
        """Stop the flusher after a last publish (best effort)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self.flush()
        self._redis.close()
