"""Prometheus metrics: requests, errors, latency and TTFT histograms, tokens and cost.

One registry per app (no module-level state).  With several workers the server sets
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates every worker's files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tollway.ledger.faults import WriterHealth

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("tollway_requests", "Generations by model, provider and status",
                                ["model", "provider", "status"], registry=r)
        self.errors = Counter("tollway_errors", "Errors returned to clients by model, provider and HTTP status "
                              "(provider: the last one tried, empty when none was; model: '(unknown)' "
                              "when not in the catalog)", ["model", "provider", "status"], registry=r)
        self.latency = Histogram("tollway_request_latency_seconds", "Gateway latency to the last byte",
                                 ["model", "provider"], buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("tollway_ttft_seconds", "Time to first token of streams",
                              ["model", "provider"], buckets=_LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("tollway_tokens", "Tokens metered", ["model", "provider", "type"],
                              registry=r)
        self.cost = Counter("tollway_cost_usd", "Cost metered in USD", ["model", "provider"], registry=r)
        self._children: dict[tuple[str, str, str], Any] = {}
        self._ledger: LedgerCollector | None = None

    def watch_ledger(self, health: Callable[[], WriterHealth]) -> None:
        """Export the ledger writer's health, read at each scrape."""
        self._ledger = LedgerCollector(health)
        self.registry.register(self._ledger)

    def record(self, *, model: str, provider: str, status: str, latency_s: float | None,
               ttft_s: float | None, prompt_tokens: int, completion_tokens: int, cost_nano: int) -> None:
        key = (model, provider, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(model, provider, status),
                self.latency.labels(model, provider),
                self.ttft.labels(model, provider),
                self.tokens.labels(model, provider, "prompt"),
                self.tokens.labels(model, provider, "completion"),
                self.cost.labels(model, provider),
            )
            if len(self._children) < 10_000:
                self._children[key] = children
        req, lat, ttft, ptok, ctok, cost = children
        req.inc()
        if latency_s is not None:
            lat.observe(latency_s)
        if ttft_s is not None:
            ttft.observe(ttft_s)
        if prompt_tokens:
            ptok.inc(prompt_tokens)
        if completion_tokens:
            ctok.inc(completion_tokens)
        if cost_nano:
            cost.inc(cost_nano / 1e9)

    def error(self, status: int, *, model: str = "", provider: str = "") -> None:
        self.errors.labels(model, provider, str(status)).inc()

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            if self._ledger is not None:  # this worker's writer (each worker has its own)
                registry.register(self._ledger)
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))


class LedgerCollector(Collector):
    """The ledger writer's health as Prometheus gauges and counters."""

    def __init__(self, health: Callable[[], WriterHealth]) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        h = self._health()
        gauges = (
            ("tollway_ledger_queue_depth", "Records accepted, neither committed nor journaled", h.queue_depth),
            ("tollway_ledger_journal_depth", "Records in the local journal, not yet in the database",
             h.journal_depth),
            ("tollway_ledger_up", "1 while the ledger writer thread runs", int(h.alive)),
            ("tollway_ledger_database_reachable", "1 while the ledger database accepts writes",
             int(h.database_reachable)),
            ("tollway_ledger_journal_writable", "1 while the journal accepts records", int(h.journal_writable)),
            ("tollway_ledger_metering_possible", "0 when answered generations could not be kept",
             int(h.metering_possible)),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        if h.write_ahead_writable is not None:
            yield GaugeMetricFamily("tollway_ledger_write_ahead_writable",
                                    "1 while the write-ahead log accepts records", value=int(h.write_ahead_writable))
        if h.last_write_age_s is not None:
            yield GaugeMetricFamily("tollway_ledger_last_write_age_seconds",
                                    "Seconds since the ledger last committed a batch", value=h.last_write_age_s)
        yield CounterMetricFamily("tollway_ledger_written", "Records committed to the ledger", value=h.written)
        yield CounterMetricFamily("tollway_ledger_dead_letters",
                                  "Records the database refused, kept in ledger_dead_letters", value=h.dead_letters)
        yield CounterMetricFamily("tollway_ledger_lost",
                                  "Records neither written, dead-lettered nor journaled", value=h.lost)
