"""Choosing the endpoint to quote, and workload price ratios."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.catalog.conftest import settings_in
from tollway.catalog import build_catalog
from tollway.catalog.selection import MAKER, Workload, compare, pick_endpoint

OPUS, M25 = "anthropic/claude-opus-4.6", "minimax/minimax-m2.5"


def test_workload_parse() -> None:
    w = Workload.parse("3:1")
    assert (w.input, w.output) == (Decimal(3), Decimal(1))
    for bad in ("x:1", "0:0", "-1:2"):
        with pytest.raises(ValueError):
            Workload.parse(bad)


def test_makers_list_prices_give_the_article_ratio(tmp_path: Path) -> None:
    catalog = build_catalog(settings_in(tmp_path), env={})
    models = [catalog.models[OPUS], catalog.models[M25]]
    rows = compare(catalog, models, Workload.parse("3:1"), provider=MAKER)
    opus, m25 = rows
    assert opus.choice is not None and opus.choice.endpoint.provider == "anthropic"
    assert m25.choice is not None and m25.choice.endpoint.provider == "minimax"
    assert opus.input_ratio is not None and round(opus.input_ratio, 1) == Decimal("16.7")
    assert m25.input_ratio == 1
    # 3:1 blend: (3*5 + 25)/4 = 10 vs (3*0.3 + 1.2)/4 = 0.525
    assert opus.blended == Decimal(10) and m25.blended == Decimal("0.525")


def test_cheapest_active_wins_over_cheaper_inactive(tmp_path: Path) -> None:
    catalog = build_catalog(settings_in(tmp_path), env={"NOVITA_API_KEY": "k"})
    model = catalog.models[M25]
    active = pick_endpoint(catalog, model)
    assert active is not None and active.endpoint.provider == "novita" and active.active
    nothing_active = build_catalog(settings_in(tmp_path), env={})
    listed = pick_endpoint(nothing_active, nothing_active.models[M25])
    assert listed is not None and not listed.active
    cheapest = min(
        nothing_active.models[M25].endpoints, key=lambda e: e.pricing.prompt + e.pricing.completion
    )
    assert listed.endpoint == cheapest


def test_provider_without_endpoint_gives_no_choice(tmp_path: Path) -> None:
    catalog = build_catalog(settings_in(tmp_path), env={})
    rows = compare(catalog, [catalog.models[OPUS], catalog.models[M25]], Workload(), provider="minimax")
    assert rows[0].choice is None and rows[0].blended is None
    assert rows[1].choice is not None and rows[1].input_ratio == 1
