"""PNG charts in the style people know from OpenRouter's rankings page.

* by model, author, provider, app, key: stacked bars of tokens per period, one colour per
  key among the top N and a grey "Others";
* by origin, weights, user or hosting country: each key's share of the period's tokens as
  lines over time, with the absolute volume per period in a panel below;
* ``--period total``: a ranking (horizontal bars, largest on top, with shares).

When the caller knows each key's country of origin (``origins``), colours come in families
- US models in blues, Chinese ones in reds, others in greens, purples... - so the US/CN
split reads at a glance, and the period where one family overtakes the other (the
crossover) is marked.

Uses matplotlib's object API with the Agg canvas directly, so no global pyplot state is
touched (safe in a server thread).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

SHARE_DIMENSIONS = frozenset(("origin", "weights", "user-country", "provider-country"))
OTHERS = "Others"
MAX_BAR_KEYS = 12  # more colours than this stop being readable
MAX_RANKED_KEYS = 20
# Colour families by country of origin (matplotlib sequential maps); the rest share "Greys".
FAMILIES = {"US": "Blues", "CN": "Reds", "FR": "Greens", "DE": "Greens", "GB": "Greens", "IL": "Purples",
            "CA": "Purples", "KR": "Oranges", "JP": "Oranges"}
ORIGIN_COLOURS = {"US": "#2b6cb0", "CN": "#c53030"}


def _series(report: dict[str, Any]) -> tuple[list[str], dict[str, list[int]], list[int]]:
    starts = [p["period_start"] for p in report["periods"]]
    index = {s: i for i, s in enumerate(starts)}
    series: dict[str, list[int]] = {}
    for row in report["rows"]:
        series.setdefault(row["key"], [0] * len(starts))[index[row["period_start"]]] = row["total_tokens"]
    totals = [p["total_tokens"] for p in report["periods"]]
    return starts, series, totals


def render_png(report: dict[str, Any], path: Path, *, title: str | None = None,
               origins: Mapping[str, str | None] | None = None) -> None:
    """Draw ``report`` (from :func:`tollway.analytics.rankings.build_report`) to ``path``.

    ``origins`` maps a key (model id, author) to its maker's country: colours by family
    and the crossover mark.  For ``by=origin`` the keys are the countries themselves.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if report["by"] == "origin":
        origins = {row["key"]: row["key"] for row in report["rows"]}
    starts, series, totals = _series(report)
    order = sorted(series, key=lambda k: (-sum(series[k]), k))
    heading = title or (f"Tokens by {report['by']}, whole range" if report["period"] == "total"
                        else f"Tokens by {report['by']}, per {report['period']}")
    if report["period"] == "total":
        fig = Figure(figsize=(12, 1.2 + 0.4 * min(len(order), MAX_RANKED_KEYS)), dpi=100)
        FigureCanvasAgg(fig)
        _ranking(fig.add_subplot(1, 1, 1), report, order[:MAX_RANKED_KEYS], series, totals, origins)
    elif report["by"] in SHARE_DIMENSIONS:
        fig = Figure(figsize=(14, 8), dpi=100)
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(2, 1, height_ratios=(3, 1.3))
        shares, volume = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
        _share_lines(shares, starts, order, series, totals, origins)
        _volume_bars(volume, starts, totals, report["period"])
        shares.tick_params(axis="x", labelbottom=False)
        _mark_crossover(shares, starts, series, origins)
        _mark_crossover(volume, starts, series, origins, label=False)
    else:
        fig = Figure(figsize=(14, 7), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        _stacked_bars(ax, starts, order, series, totals, report["period"], origins)
        _mark_crossover(ax, starts, series, origins)
    fig.suptitle(heading)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(path), format="png")


def _period_label(period: str) -> str:
    return {"week": "week starting (Monday, UTC)", "day": "day (UTC)", "month": "month"}.get(period, period)


def _share_lines(ax: Any, starts: list[str], order: list[str], series: dict[str, list[int]], totals: list[int],
                 origins: Mapping[str, str | None] | None) -> None:
    colours = key_colours(order, origins)
    for key in order:
        shares = [v / t * 100 if t else 0.0 for v, t in zip(series[key], totals, strict=True)]
        ax.plot(starts, shares, marker="o", label=key, color=colours[key], linewidth=2)
    ax.set_ylabel("share of the period's tokens (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _volume_bars(ax: Any, starts: list[str], totals: list[int], period: str) -> None:
    divisor, unit = _token_unit(max(totals, default=0))
    ax.bar(starts, [t / divisor for t in totals], color="#718096")
    ax.set_ylabel(f"all tokens\n({unit})")
    ax.set_xlabel(_period_label(period))
    ax.tick_params(axis="x", labelrotation=45)
    ax.grid(axis="y", alpha=0.3)


def _stacked_bars(ax: Any, starts: list[str], order: list[str], series: dict[str, list[int]],
                  totals: list[int], period: str, origins: Mapping[str, str | None] | None) -> None:
    # Label the axis in the unit that fits the data (a laptop demo makes thousands,
    # OpenRouter's rankings trillions).
    divisor, unit = _token_unit(max(totals, default=0))
    shown = order[:MAX_BAR_KEYS]
    if origins:  # families stacked together: US at the bottom, then CN, then the rest
        rank = {country: i for i, country in enumerate(("US", "CN"))}
        shown = sorted(shown, key=lambda k: (rank.get(origins.get(k) or "", 9), order.index(k)))
    colours = key_colours(shown, origins)
    bottom = [0.0] * len(starts)
    for key in shown:
        values = [v / divisor for v in series[key]]
        label = f"{key} ({origins.get(key) or '?'})" if origins else key
        ax.bar(starts, values, bottom=bottom, label=label, color=colours[key], edgecolor="white", linewidth=0.4)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    others = [(t / divisor) - b for t, b in zip(totals, bottom, strict=True)]
    if any(o > 1e-9 for o in others):
        ax.bar(starts, others, bottom=bottom, label=OTHERS, color="#cbd5e0")
    ax.set_ylabel(f"tokens ({unit})")
    ax.set_xlabel(_period_label(period))
    ax.tick_params(axis="x", labelrotation=45)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")


def _ranking(ax: Any, report: dict[str, Any], keys: list[str], series: dict[str, list[int]], totals: list[int],
             origins: Mapping[str, str | None] | None) -> None:
    divisor, unit = _token_unit(max((sum(series[k]) for k in keys), default=0))
    grand = sum(totals)
    colours = key_colours(keys, origins)
    values = [sum(series[k]) / divisor for k in keys]
    labels = [f"{k} ({origins.get(k) or '?'})" if origins and report["by"] != "origin" else k for k in keys]
    bars = ax.barh(labels[::-1], values[::-1], color=[colours[k] for k in keys[::-1]])
    for bar, key in zip(bars, keys[::-1], strict=True):
        share = sum(series[key]) / grand * 100 if grand else 0.0
        ax.annotate(f" {share:.1f}%", (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center",
                    fontsize="small")
    ax.set_xlabel(f"tokens over the whole range ({unit})")
    ax.set_ylabel(report["by"])
    ax.margins(x=0.12)
    ax.grid(axis="x", alpha=0.3)


def crossover(starts: list[str], series: dict[str, list[int]],
              origins: Mapping[str, str | None] | None) -> int | None:
    """Index of the first period where Chinese models' tokens exceed US models' after a
    period where they did not; None when that never happens (or origins are unknown)."""
    if not origins:
        return None
    us = [0] * len(starts)
    cn = [0] * len(starts)
    for key, values in series.items():
        target = {"US": us, "CN": cn}.get(origins.get(key) or "")
        if target is not None:
            for i, v in enumerate(values):
                target[i] += v
    for i in range(1, len(starts)):
        if cn[i] > us[i] and cn[i - 1] <= us[i - 1]:
            return i
    return None


def _mark_crossover(ax: Any, starts: list[str], series: dict[str, list[int]],
                    origins: Mapping[str, str | None] | None, *, label: bool = True) -> None:
    index = crossover(starts, series, origins)
    if index is None:
        return
    ax.axvline(index - 0.5, color="#2d3748", linestyle="--", linewidth=1.2)
    if label:
        ax.annotate(f"crossover: Chinese models pass US ones\n(week of {starts[index]})", xy=(index - 0.5, 0.97),
                    xycoords=("data", "axes fraction"), ha="right", va="top", fontsize="small",
                    xytext=(-6, 0), textcoords="offset points")


def key_colours(keys: list[str], origins: Mapping[str, str | None] | None) -> dict[str, Any]:
    """A colour per key: by origin family when origins are known, else tab20's distinct colours."""
    from matplotlib import colormaps

    if not origins:
        cmap = colormaps["tab20"]
        return {key: cmap(i % 20) for i, key in enumerate(keys)}
    if all(k in ORIGIN_COLOURS or origins.get(k) == k for k in keys):  # the keys are countries
        greys = colormaps["tab10"]
        return {k: ORIGIN_COLOURS.get(k, greys(i % 10)) for i, k in enumerate(keys)}
    families: dict[str, list[str]] = {}
    for key in keys:
        families.setdefault(FAMILIES.get(origins.get(key) or "", "Greys"), []).append(key)
    out: dict[str, Any] = {}
    for family, members in families.items():
        cmap = colormaps[family]
        for i, key in enumerate(members):
            # From dark to light, skipping the palest end that vanishes on white.
            out[key] = cmap(0.9 - 0.55 * (i / max(1, len(members) - 1)) if len(members) > 1 else 0.75)
    return out


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


def origins_from_catalog(by: str, catalog: Any) -> dict[str, str | None] | None:
    """Each model's (or author's) country of origin, for colouring; None for other dimensions."""
    if by == "model":
        return {m.id: m.author_country for m in catalog.models.values()}
    if by == "author":
        return {m.author_name: m.author_country for m in catalog.models.values()}
    return None
