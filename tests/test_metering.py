"""Cost is exact integer arithmetic, with cache and reasoning prices."""

from __future__ import annotations

from decimal import Decimal

from tollway.config import Pricing
from tollway.metering import PriceTable, Usage, estimate_prompt_tokens, usd_to_nano


def test_cost_is_exact_nano_dollars() -> None:
    table = PriceTable.from_pricing(Pricing(prompt=Decimal("0.30"), completion=Decimal("1.20")))
    assert table.cost_nano(Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000)) == 1_500_000_000
    assert table.cost_nano(Usage(prompt_tokens=1)) == 300  # 0.3 micro-dollars


def test_many_small_costs_sum_without_drift() -> None:
    table = PriceTable.from_pricing(Pricing(prompt=Decimal("0.1"), completion=Decimal("0.2")))
    total = sum(table.cost_nano(Usage(prompt_tokens=3, completion_tokens=1)) for _ in range(1_000_000))
    assert total == 1_000_000 * (300 + 200)


def test_cache_prices_apply_to_cached_and_written_tokens() -> None:
    pricing = Pricing(prompt=Decimal(5), completion=Decimal(25), cache_read=Decimal("0.5"),
                      cache_write=Decimal("6.25"))
    table = PriceTable.from_pricing(pricing)
    usage = Usage(prompt_tokens=100_000, completion_tokens=1_000, cached_tokens=90_000,
                  cache_write_tokens=5_000)
    # 5,000 fresh at $5, 90,000 cached at $0.50, 5,000 written at $6.25, 1,000 out at $25
    expected = 5_000 * 5_000 + 90_000 * 500 + 5_000 * 6_250 + 1_000 * 25_000
    assert table.cost_nano(usage) == expected
    # Charging cached tokens at the full input price would be several times more.
    naive = 100_000 * 5_000 + 1_000 * 25_000
    assert naive > 4 * table.cost_nano(usage)


def test_sub_nano_prices_round_half_even_once() -> None:
    table = PriceTable.from_pricing(Pricing(prompt=Decimal("0.0375")))
    assert table.cost_nano(Usage(prompt_tokens=1)) == 38  # 37.5 -> 38 (even)
    assert table.cost_nano(Usage(prompt_tokens=3)) == 112  # 112.5 -> 112 (even)
    assert table.cost_nano(Usage(prompt_tokens=1000)) == 37_500


def test_request_fee_and_reasoning_price() -> None:
    table = PriceTable.from_pricing(Pricing(completion=Decimal(10), reasoning=Decimal(20),
                                            request=Decimal("0.001")))
    assert table.cost_nano(Usage(completion_tokens=10, reasoning_tokens=4)) == 6 * 10_000 + 4 * 20_000 \
        + 1_000_000


def test_usage_from_openai_variants() -> None:
    u = Usage.from_openai({"prompt_tokens": 10, "completion_tokens": 5, "prompt_cache_hit_tokens": 4})
    assert u is not None and u.cached_tokens == 4
    assert Usage.from_openai(None) is None
    u = Usage.from_openai({"prompt_tokens": 3, "completion_tokens": 1,
                           "prompt_tokens_details": {"cached_tokens": 99}})
    assert u is not None and u.cached_tokens == 3  # clamped to the prompt


def test_usd_to_nano_and_prompt_estimate() -> None:
    assert usd_to_nano("10") == 10_000_000_000
    assert usd_to_nano(Decimal("0.000000001")) == 1
    body = {"messages": [{"role": "user", "content": "x" * 400}]}
    assert 100 <= estimate_prompt_tokens(body) <= 110


def test_split_adds_up_to_the_total() -> None:
    table = PriceTable.from_pricing(Pricing(prompt=Decimal("0.0375"), completion=Decimal("0.15"),
                                            cache_read=Decimal("0.01"), request=Decimal("0.0001")))
    for p, c, cached in [(1, 1, 0), (3, 7, 1), (12345, 678, 9000), (0, 5, 0)]:
        usage = Usage(prompt_tokens=p, completion_tokens=c, cached_tokens=cached)
        prompt, completion = table.split_nano(usage)
        assert prompt + completion == table.cost_nano(usage)
        assert prompt >= 100_000  # the request fee sits on the prompt side
