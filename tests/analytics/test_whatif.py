"""What-if pricing against costs computed here with Decimal arithmetic."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from tollway.analytics.importer import import_usage
from tollway.analytics.rankings import ReportError
from tollway.analytics.whatif import what_if
from tollway.catalog.index import build_catalog
from tollway.config import ModelConfig
from tollway.ledger.records import GenerationRecord
from tollway.metering import PriceTable, Usage

from .helpers import MINIMAX, OPUS, db_url, ledger, record, settings_for, write

__all__ = ["db_url"]

MON = datetime(2026, 2, 16, 9)


def _usd(pricing: dict[str, str], name: str, default: str) -> Decimal:
    return Decimal(pricing.get(name, pricing[default]))


def _decimal_cost(model: dict, records: list[GenerationRecord]) -> int:  # type: ignore[type-arg]
    """USD per million tokens x tokens, summed exactly, rounded once to nano-dollars."""
    p = model["endpoints"][0]["pricing"]
    total = Decimal(0)
    for r in records:
        fresh = r.prompt_tokens - r.cached_tokens - r.cache_write_tokens
        total += (fresh * Decimal(p["prompt"]) + r.cached_tokens * _usd(p, "cache_read", "prompt")
                  + r.cache_write_tokens * _usd(p, "cache_write", "prompt")
                  + r.completion_tokens * Decimal(p["completion"])) / 1_000_000
    return int((total * 10**9).to_integral_value(rounding=ROUND_HALF_EVEN))


def _opus_traffic(catalog) -> list[GenerationRecord]:  # type: ignore[no-untyped-def]
    opus = catalog.models[OPUS["id"]]
    table = catalog.price_table(opus.id, opus.endpoints[0])
    out = []
    for i in range(60):
        prompt = 40_000 + 997 * i
        cached = prompt * 3 // 4 if i % 3 else 0
        writes = 1_000 if i % 5 == 0 else 0
        usage = Usage(prompt, 300 + 7 * i, cached, writes, 50)
        out.append(record(i, MON + timedelta(hours=i), OPUS["id"], provider="anthropic", prompt_tokens=prompt,
                          completion_tokens=usage.completion_tokens, cached_tokens=cached,
                          cache_write_tokens=writes, reasoning_tokens=50, cost_nanousd=table.cost_nano(usage)))
    return out


def test_reprices_a_weeks_traffic_with_cache_prices(db_url: str) -> None:
    catalog = build_catalog(settings_for(db_url))
    records = _opus_traffic(catalog)
    with ledger(db_url) as engine:
        write(engine, records)
        # Traffic outside the range must not count.
        write(engine, [record(999, datetime(2026, 2, 23, 1), OPUS["id"], prompt_tokens=10**6,
                              cost_nanousd=5 * 10**9)])
        with engine.connect() as conn:
            doc = what_if(conn, catalog, [MINIMAX["id"], OPUS["id"]], start=date(2026, 2, 16),
                          end=date(2026, 2, 22), models=[OPUS["id"]])
    actual = sum(r.cost_nanousd for r in records)
    assert doc["actual_cost_nanousd"] == actual
    # Per-request rounding in the ledger vs one rounding here: at most half a nano-dollar per request.
    assert abs(_decimal_cost(OPUS, records) - actual) <= len(records)
    minimax, opus = doc["scenarios"]
    assert minimax["model"] == MINIMAX["id"]
    assert minimax["cost_nanousd"] == _decimal_cost(MINIMAX, records)
    assert opus["cost_nanousd"] == _decimal_cost(OPUS, records)
    assert minimax["times_cheaper"] == pytest.approx(actual / minimax["cost_nanousd"])
    assert doc["cached_tokens"] == sum(r.cached_tokens for r in records)


def test_the_16_7x_of_the_news_reports(db_url: str) -> None:
    """Input tokens only: Opus 4.6 at $5 per million against MiniMax M2.5 at $0.30."""
    catalog = build_catalog(settings_for(db_url))
    opus = catalog.models[OPUS["id"]]
    table = catalog.price_table(opus.id, opus.endpoints[0])
    records = [record(i, MON + timedelta(minutes=i), OPUS["id"], prompt_tokens=51_800,
                      cost_nanousd=table.cost_nano(Usage(51_800, 0))) for i in range(100)]
    with ledger(db_url) as engine:
        write(engine, records)
        with engine.connect() as conn:
            doc = what_if(conn, catalog, [MINIMAX["id"]], start=date(2026, 2, 16), end=date(2026, 2, 22))
    (scenario,) = doc["scenarios"]
    assert doc["actual_cost_nanousd"] == 100 * 51_800 * 5_000  # $5 per million = 5,000 nano per token
    assert scenario["cost_nanousd"] == 100 * 51_800 * 300
    assert round(scenario["times_cheaper"], 1) == 16.7


def test_imported_traffic_without_cost_uses_its_list_price(db_url: str, tmp_path: Path) -> None:
    catalog = build_catalog(settings_for(db_url))
    path = tmp_path / "u.csv"
    path.write_text("created_at,model,prompt_tokens,completion_tokens,cached_tokens\n"
                    "2026-02-16T10:00:00Z,anthropic/claude-opus-4.6,2000000,100000,1000000\n")
    with ledger(db_url) as engine:
        import_usage(engine, path, catalog=catalog)
        with engine.connect() as conn:
            doc = what_if(conn, catalog, [MINIMAX["id"]])
            with pytest.raises(ReportError, match="no prices"):
                what_if(conn, catalog, ["nobody/nothing"])
    # Priced at import from the catalog: 1M fresh x $5 + 1M cached x $0.5 + 0.1M x $25.
    assert doc["actual_cost_nanousd"] == (5 + Decimal("0.5") + Decimal("2.5")) * 10**9
    assert doc["scenarios"][0]["cost_nanousd"] == (Decimal("0.3") + Decimal("0.03") + Decimal("0.11")) * 10**9


def test_config_models_are_typed() -> None:
    assert ModelConfig.model_validate(OPUS).endpoints[0].pricing.cache_read == Decimal("0.5")
    assert PriceTable.from_pricing(ModelConfig.model_validate(MINIMAX).endpoints[0].pricing).prompt == 300_000_000
