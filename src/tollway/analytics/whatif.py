"""What-if pricing: re-price a period's traffic at another model's prices.

"Last week cost $X on Claude Opus 4.6; on MiniMax M2.5 it would have cost $Y, 16.7x less."
The traffic's token sums (fresh prompt, cached reads, cache writes, completion, reasoning)
come from the daily model rollup and are priced with :class:`tollway.metering.PriceTable`,
so cache prices apply to cached tokens.  Cost is linear in tokens, so pricing the sums is
exact; the only difference from pricing request by request is the single final rounding
to a nano-dollar (plus flat per-request fees, which are added per request here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, func, select

from tollway.analytics.origins import find_model
from tollway.analytics.rankings import ReportError
from tollway.catalog.index import Catalog
from tollway.config import ModelConfig
from tollway.ledger.rollups import usage_daily_model
from tollway.metering import PriceTable, Usage, nano_to_usd

_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
         "reasoning_tokens", "cost_nanousd")


@dataclass(frozen=True, slots=True)
class Traffic:
    """Summed usage of one source model over the range."""

    model: str
    requests: int
    usage: Usage
    cost_nanousd: int


def traffic(conn: Connection, start: date | None, end: date | None,
            models: Sequence[str] = ()) -> list[Traffic]:
    """Token sums per model from the daily rollup (``models`` empty: all models)."""
    t = usage_daily_model
    stmt = select(t.c.model, *[func.sum(t.c[c]) for c in _SUMS]).group_by(t.c.model).order_by(t.c.model)
    if start is not None:
        stmt = stmt.where(t.c.day >= start)
    if end is not None:
        stmt = stmt.where(t.c.day <= end)
    if models:
        stmt = stmt.where(t.c.model.in_(list(models)))
    out = []
    for row in conn.execute(stmt):
        requests, prompt, completion, cached, writes, reasoning, cost = (int(v or 0) for v in row[1:])
        out.append(Traffic(str(row[0]), requests, Usage(prompt, completion, cached, writes, reasoning), cost))
    return out


def price_for(catalog: Catalog, model_id: str, provider: str | None = None) -> tuple[ModelConfig, PriceTable]:
    """The model's price table: the named provider's endpoint, else its cheapest listed one."""
    model = find_model(catalog.models, model_id)
    if model is None or not model.endpoints:
        raise ReportError(f"model {model_id!r} has no prices in the catalog; add it under models: in the "
                          "config with an endpoint's pricing")
    endpoints = [e for e in model.endpoints if provider is None or e.provider == provider]
    if not endpoints:
        raise ReportError(f"model {model_id!r} has no endpoint at provider {provider!r}")
    tables = [catalog.price_table(model.id, e) for e in endpoints]
    # Cheapest on a 1:1 prompt/completion mix; ties keep catalog order.
    best = min(tables, key=lambda p: p.prompt + p.completion)
    return model, best


def _reprice(table: PriceTable, flows: Sequence[Traffic]) -> int:
    total = 0
    for flow in flows:
        # cost_nano adds the flat per-request fee once; the flow stands for `requests` requests.
        total += table.cost_nano(flow.usage) + table.request_nano * (flow.requests - 1)
    return total


def what_if(conn: Connection, catalog: Catalog, targets: Sequence[str], *, start: date | None = None,
            end: date | None = None, models: Sequence[str] = (),
            provider: str | None = None) -> dict[str, Any]:
    """Actual cost of the range's traffic (optionally only ``models``) and its cost at each target."""
    flows = traffic(conn, start, end, models)
    actual = sum(f.cost_nanousd for f in flows)
    # Traffic imported without costs is priced at its own list price, where the catalog knows it.
    list_cost: int | None = 0
    for flow in flows:
        found = find_model(catalog.models, flow.model)
        if found is None or not found.endpoints or list_cost is None:
            list_cost = None
            continue
        list_cost += _reprice(price_for(catalog, found.id)[1], [flow])
    baseline = actual or list_cost or 0
    usage = Usage(*(sum(getattr(f.usage, n) for f in flows) for n in
                    ("prompt_tokens", "completion_tokens", "cached_tokens", "cache_write_tokens",
                     "reasoning_tokens")))
    scenarios = []
    for target in targets:
        model, table = price_for(catalog, target, provider)
        cost = _reprice(table, flows)
        scenarios.append({
            "model": model.id, "cost_nanousd": cost, "cost_usd": nano_to_usd(cost),
            # How many times cheaper the target is than what the traffic actually cost.
            "times_cheaper": baseline / cost if cost else None,
            "saving_nanousd": baseline - cost,
        })
    return {
        "from": start.isoformat() if start else None, "to": end.isoformat() if end else None,
        "models": sorted(f.model for f in flows),
        "requests": sum(f.requests for f in flows),
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "cached_tokens": usage.cached_tokens, "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
        "actual_cost_nanousd": actual, "actual_cost_usd": nano_to_usd(actual),
        "list_cost_nanousd": list_cost, "baseline_cost_nanousd": baseline,
        "scenarios": scenarios,
    }
