"""Prometheus metrics: requests, errors, latency and TTFT histograms, tokens and cost.

One registry per app (no module-level state).  With several workers the server sets
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates every worker's files.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

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
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))
