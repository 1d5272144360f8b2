"""Chart choices that a reader depends on: origin colour families, the crossover, total as a ranking."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tollway.analytics.charts import crossover, key_colours, render_png

ORIGINS = {"anthropic/claude-opus-4.6": "US", "google/gemini-2.5-flash": "US", "x-ai/grok-4.1-fast": "US",
           "minimax/minimax-m2.5": "CN", "deepseek/deepseek-v3.2": "CN", "mistralai/mistral-large": "FR"}


def _report(period: str, cells: dict[str, list[int]], by: str = "model") -> dict[str, Any]:
    starts = [f"2026-02-{2 + 7 * i:02d}" for i in range(len(next(iter(cells.values()))))]
    rows = [{"period_start": s, "key": k, "total_tokens": v[i]} for k, v in cells.items()
            for i, s in enumerate(starts) if v[i]]
    periods = [{"period_start": s, "total_tokens": sum(v[i] for v in cells.values())} for i, s in enumerate(starts)]
    return {"by": by, "period": period, "rows": rows, "periods": periods}


def test_us_models_are_blue_and_chinese_ones_red() -> None:
    colours = key_colours(list(ORIGINS), ORIGINS)
    for key, origin in ORIGINS.items():
        r, _, b, _ = colours[key]
        if origin == "US":
            assert b > r, key
        elif origin == "CN":
            assert r > b, key
    assert len({colours[k] for k in ORIGINS}) == len(ORIGINS)  # still one colour per key


def test_crossover_is_the_first_period_chinese_models_lead() -> None:
    series = {"anthropic/claude-opus-4.6": [10, 10, 10, 10], "minimax/minimax-m2.5": [2, 12, 8, 15]}
    assert crossover(["a", "b", "c", "d"], series, ORIGINS) == 1
    assert crossover(["a", "b"], {"anthropic/claude-opus-4.6": [5, 5]}, ORIGINS) is None
    assert crossover(["a", "b"], series, None) is None


def test_every_shape_draws(tmp_path: Path) -> None:
    cells = {"anthropic/claude-opus-4.6": [10, 10, 10], "minimax/minimax-m2.5": [1, 5, 30]}
    for name, report in (("bars", _report("week", cells)), ("total", _report("total", {k: [sum(v)]
                                                                                         for k, v in cells.items()})),
                         ("shares", _report("week", {"US": [10, 10, 10], "CN": [1, 5, 30]}, by="origin"))):
        path = tmp_path / f"{name}.png"
        render_png(report, path, origins=ORIGINS)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
