"""Rankings as terminal tables: one table per period, a ranking for ``--period total``,
or one compact pivot (``--pivot``: each key's share per period).

Takes the plain report of :func:`tollway.analytics.rankings.build_report`; used by
``tollway report rankings`` and by the demo's closing reports, so both read alike.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table

PIVOT_COLUMNS_MAX = 6  # up to this many keys become columns; more keys become rows
PIVOT_ROWS_MAX = 15  # keys shown as rows, largest first (the rest are summed in "others")


def human_tokens(n: int) -> str:
    """4120274630636 -> '4.12T' (display only)."""
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _span(doc: dict[str, Any]) -> str:
    """The dates a ``total`` report covers: the asked range, else the data's."""
    first, last = doc.get("from"), doc.get("to")
    if first and last:
        return f"{first} to {last}"
    if first:
        return f"from {first}"
    if last:
        return f"up to {last}"
    return "all recorded usage"


def _concentration(summary: dict[str, Any]) -> str:
    """'top 5 = 72.0%' only when there are more keys than that; else how many keys there are."""
    if summary["keys"] <= summary["top_n"]:
        return f"{summary['keys']} {'key' if summary['keys'] == 1 else 'keys'}"
    return f"top {summary['top_n']} = {pct(summary['top_n_share'])} of {summary['keys']} keys"


def period_tables(doc: dict[str, Any]) -> list[Table]:
    """One ranked table per period; for ``total`` a single ranking without moves."""
    total = doc["period"] == "total"
    by_period: dict[str, list[dict[str, Any]]] = {}
    for row in doc["rows"]:
        by_period.setdefault(row["period_start"], []).append(row)
    columns = ["#", doc["by"], "tokens", "share", "prompt", "completion", "cache hit", "requests", "cost",
               "$/Mtok"]
    if not total:
        columns[1:1] = ["move"]
        columns.insert(columns.index("share") + 1, "change")
    tables = []
    for summary in doc["periods"]:
        start = summary["period_start"]
        when = f"total, {_span(doc)}" if total else f"{doc['period']} of {start}"
        table = Table(title=f"{when}: {human_tokens(summary['total_tokens'])} tokens, {_concentration(summary)}")
        for column in columns:
            if column == doc["by"]:
                table.add_column(column, overflow="fold")
            else:
                table.add_column(column, justify="right", no_wrap=True)
        for row in by_period.get(start, []):
            cells = {
                "#": str(row["rank"]), doc["by"]: row["key"], "tokens": human_tokens(row["total_tokens"]),
                "share": pct(row["share"]), "change": pct(row["change"]),
                "move": _move(row["rank_change"]), "prompt": human_tokens(row["prompt_tokens"]),
                "completion": human_tokens(row["completion_tokens"]), "cache hit": pct(row["cache_hit_share"]),
                "requests": f"{row['requests']:,}", "cost": f"${row['cost_usd']:,.2f}",
                "$/Mtok": "" if row["usd_per_mtok"] is None else f"{row['usd_per_mtok']:.3f}"}
            table.add_row(*(cells[c] for c in columns))
        tables.append(table)
    return tables


def _move(rank_change: int | None) -> str:
    """Rank change against the previous period; 'new' when the key was absent then."""
    if rank_change is None:
        return "new"
    return f"{rank_change:+d}" if rank_change else "="


def pivot_table(doc: dict[str, Any], *, title: str | None = None) -> Table:
    """Each key's share of each period's tokens in one table (the crossover at a glance).

    Few keys (origins, countries) are columns and periods rows; many keys (models) are
    rows, largest over the range first, and periods columns.
    """
    starts = [p["period_start"] for p in doc["periods"]]
    share: dict[str, dict[str, float | None]] = {}
    tokens: dict[str, int] = {}
    for row in doc["rows"]:
        share.setdefault(row["key"], {})[row["period_start"]] = row["share"]
        tokens[row["key"]] = tokens.get(row["key"], 0) + row["total_tokens"]
    keys = sorted(share, key=lambda k: (-tokens[k], k))
    volume = {p["period_start"]: human_tokens(p["total_tokens"]) for p in doc["periods"]}
    table = Table(title=title or f"Share of tokens by {doc['by']}, per {doc['period']}")
    if len(keys) <= PIVOT_COLUMNS_MAX:
        table.add_column(doc["period"])
        table.add_column("tokens", justify="right")
        for key in keys:
            table.add_column(key, justify="right")
        for start in starts:
            table.add_row(start, volume[start], *(_cell(share[k].get(start)) for k in keys))
        return table
    table.add_column(doc["by"], overflow="fold")
    labels = [start[5:] if doc["period"] in ("week", "day") else start for start in starts]  # MM-DD
    for label in labels:
        table.add_column(label, justify="right", no_wrap=True)
    for key in keys[:PIVOT_ROWS_MAX]:
        table.add_row(key, *(_cell(share[key].get(start)) for start in starts))
    rest = keys[PIVOT_ROWS_MAX:]
    if rest:
        table.add_row(f"{len(rest)} others", *(_cell(sum(share[k].get(s) or 0.0 for k in rest)) for s in starts))
    table.add_row("[dim]tokens", *(f"[dim]{volume[s]}" for s in starts))
    return table


def _cell(value: float | None) -> str:
    return "-" if not value else f"{value * 100:.1f}%"
