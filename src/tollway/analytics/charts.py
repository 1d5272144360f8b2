"""PNG charts in the style people know from OpenRouter's rankings page.

* by model, author, provider, app, key: stacked bars of tokens per period, one colour per
  key among the top N and a grey "Others";
* by origin, weights, user or hosting country: each key's share of the period's tokens as
  lines over time.

Uses matplotlib's object API with the Agg canvas directly, so no global pyplot state is
touched (safe in a server thread).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SHARE_DIMENSIONS = frozenset(("origin", "weights", "user-country", "provider-country"))
OTHERS = "Others"
MAX_BAR_KEYS = 12  # more colours than this stop being readable


def _series(report: dict[str, Any]) -> tuple[list[str], dict[str, list[int]], list[int]]:
    starts = [p["period_start"] for p in report["periods"]]
    index = {s: i for i, s in enumerate(starts)}
    series: dict[str, list[int]] = {}
    for row in report["rows"]:
        series.setdefault(row["key"], [0] * len(starts))[index[row["period_start"]]] = row["total_tokens"]
    totals = [p["total_tokens"] for p in report["periods"]]
    return starts, series, totals


def render_png(report: dict[str, Any], path: Path, *, title: str | None = None) -> None:
    """Draw ``report`` (from :func:`tollway.analytics.rankings.build_report`) to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    starts, series, totals = _series(report)
    fig = Figure(figsize=(14, 6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    order = sorted(series, key=lambda k: -sum(series[k]))
    if report["by"] in SHARE_DIMENSIONS:
        for key in order:
            shares = [v / t * 100 if t else 0.0 for v, t in zip(series[key], totals, strict=True)]
            ax.plot(starts, shares, marker="o", label=key)
        ax.set_ylabel("share of tokens (%)")
        ax.set_ylim(0, 100)
    else:
        # Label the axis in the unit that fits the data (a laptop demo makes thousands,
        # OpenRouter's rankings trillions), and give every stacked key its own colour.
        divisor, unit = _token_unit(max(totals, default=0))
        palette = matplotlib_colors(len(order[:MAX_BAR_KEYS]))
        bottom = [0.0] * len(starts)
        for key, color in zip(order[:MAX_BAR_KEYS], palette, strict=False):
            values = [v / divisor for v in series[key]]
            ax.bar(starts, values, bottom=bottom, label=key, color=color)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        others = [(t / divisor) - b for t, b in zip(totals, bottom, strict=True)]
        if any(o > 0 for o in others):
            ax.bar(starts, others, bottom=bottom, label=OTHERS, color="#bbbbbb")
        ax.set_ylabel(f"tokens ({unit})")
    ax.set_title(title or f"Tokens by {report['by']}, per {report['period']}")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png")


def _token_unit(peak: int) -> tuple[float, str]:
    for divisor, unit in ((1e12, "trillions"), (1e9, "billions"), (1e6, "millions"), (1e3, "thousands")):
        if peak >= divisor:
            return divisor, unit
    return 1.0, "tokens"


def matplotlib_colors(n: int) -> list[Any]:
    """``n`` distinct colours: tab20 holds twenty before any repeats."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]
