"""The worst case a request reserves, and the reset periods it is counted in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tollway.adapters.base import Target
from tollway.catalog import build_catalog
from tollway.config import parse_settings
from tollway.limits.limiter import affordable_output, worst_case
from tollway.limits.periods import period_of


def _targets(*endpoints: dict[str, Any]) -> tuple[Any, list[Target]]:
    settings = parse_settings({
        "catalog": False,
        "providers": [{"name": f"p{i}", "base_url": "http://127.0.0.1:9", "local": True}
                      for i in range(len(endpoints))],
        "models": [{"id": "t/m", "endpoints": [{"provider": f"p{i}", "model": "m", **e}
                                                for i, e in enumerate(endpoints)]}],
    }, source="test")
    catalog = build_catalog(settings, env={})
    model = catalog.models["t/m"]
    return catalog, [Target(model=model, endpoint=e, provider=p) for e, p in catalog.active_endpoints(model)]


def test_reservation_takes_the_dearest_target_and_prices() -> None:
    catalog, targets = _targets(
        {"pricing": {"prompt": "1", "completion": "2"}},
        # cache writes dearer than prompts, reasoning dearer than completions, a flat fee
        {"pricing": {"prompt": "1", "completion": "2", "cache_write": "3", "reasoning": "5",
                     "request": "0.001"}, "max_output_tokens": 50})
    cost, tokens = worst_case(catalog, targets, prompt_tokens=10, output_cap=100)
    first = 10 * 1000 + 100 * 2000
    second = 10 * 3000 + 50 * 5000 + 1_000_000  # capped at the endpoint's 50 output tokens
    assert cost == max(first, second) == second
    assert tokens == 110


def test_the_output_is_capped_by_the_endpoint_and_counted_n_times() -> None:
    catalog, targets = _targets({"pricing": {"prompt": "1", "completion": "1"}, "max_output_tokens": 30})
    assert worst_case(catalog, targets, prompt_tokens=0, output_cap=4096) == (30 * 1000, 30)
    catalog, targets = _targets({"pricing": {"prompt": "1", "completion": "1"}})
    assert worst_case(catalog, targets, prompt_tokens=0, output_cap=64) == (64 * 1000, 64)
    assert worst_case(catalog, targets, prompt_tokens=5, output_cap=64, n=50) == ((5 + 50 * 64) * 1000,
                                                                                  5 + 50 * 64)


def test_the_prompt_is_bounded_by_the_context_length() -> None:
    catalog, targets = _targets({"pricing": {"prompt": "1", "completion": "1"}, "context_length": 1000})
    assert worst_case(catalog, targets, prompt_tokens=10_000_000, output_cap=10) == (1010 * 1000, 1010)


def test_affordable_output_is_the_largest_cap_that_fits() -> None:
    catalog, targets = _targets({"pricing": {"prompt": "1", "completion": "2"}},
                                {"pricing": {"prompt": "1", "completion": "3"}})
    remaining = 10 * 1000 + 7 * 3000 + 2999  # 7 tokens at the dearer target, not 8
    fits = affordable_output(catalog, targets, 10, 1, remaining)
    assert fits == 7
    assert worst_case(catalog, targets, 10, fits)[0] <= remaining < worst_case(catalog, targets, 10, fits + 1)[0]
    assert affordable_output(catalog, targets, 10, 2, remaining) == 3  # n=2: each choice half
    assert affordable_output(catalog, targets, 10, 1, 9_999) == 0  # not even the prompt


def test_sub_nano_costs_are_rounded_up() -> None:
    catalog, targets = _targets({"pricing": {"prompt": "0.0001", "completion": "0"}})
    assert worst_case(catalog, targets, prompt_tokens=3, output_cap=1)[0] == 1


def test_periods_follow_utc_days_iso_weeks_and_months() -> None:
    sunday = datetime(2026, 3, 1, 23, 59, 59)
    assert period_of("daily", sunday).id == "d20260301"
    assert period_of("daily", datetime(2026, 3, 2)).id == "d20260302"
    week = period_of("weekly", sunday)
    assert (week.start, week.end) == (datetime(2026, 2, 23), datetime(2026, 3, 2))
    assert period_of("weekly", datetime(2026, 3, 2)).start == datetime(2026, 3, 2)
    december = period_of("monthly", datetime(2026, 12, 31, 12))
    assert (december.id, december.end) == ("m202612", datetime(2027, 1, 1))
    assert period_of(None, sunday).id == "all" and period_of(None, sunday).end is None
