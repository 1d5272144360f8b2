"""``tollway report``: rankings, what-if cost and task sizes, from the rollups.

Thin commands: parse, call one analytics function, render (a rich table, or one JSON
object with ``--json``).  Heavy imports (rich, matplotlib, duckdb) stay inside commands.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import Any

import click
import orjson

from tollway.analytics.attribution import DIMENSIONS
from tollway.analytics.periods import PERIODS
from tollway.analytics.rankings import ReportError
from tollway.cli.common import config_option, open_ledger, settings_or_exit

BY_CHOICES = (*DIMENSIONS, "user_country")  # the underscore spelling is accepted too


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


def range_options(fn: Any) -> Any:
    fn = click.option("--to", "end", callback=_date, help="Last day, inclusive (YYYY-MM-DD, UTC).")(fn)
    return click.option("--from", "start", callback=_date, help="First day (YYYY-MM-DD, UTC).")(fn)


def _emit_json(doc: dict[str, Any]) -> None:
    click.echo(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS).decode())


def human_tokens(n: int) -> str:
    """4120274630636 -> '4.12T' (display only)."""
    for unit, size in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


@click.group()
def report() -> None:
    """Usage analytics: rankings by model, author, origin...; what-if cost; task sizes."""


@report.command()
@config_option
@click.option("--by", type=click.Choice(BY_CHOICES), default="model", show_default=True,
              help="Dimension to rank.")
@click.option("--period", type=click.Choice(PERIODS), default="week", show_default=True,
              help="day, week (Monday-Sunday UTC), month, or total over the range.")
@range_options
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Rows per period (ranks and shares still count every key; also the N of concentration).")
@click.option("--app", default=None, help="Only traffic from this app (HTTP-Referer).")
@click.option("--key", "key_id", default=None, help="Only traffic of this key id.")
@click.option("--parquet", default=None,
              help="Scan exported Parquet (path or glob) with DuckDB instead of the rollups.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw the chart to this PNG file.")
def rankings(config: str | None, by: str, period: str, start: date | None, end: date | None,
             top: int | None, app: str | None, key_id: str | None, parquet: str | None, as_json: bool,
             png: Path | None) -> None:
    """Token volume ranked by a dimension, per period, with share and change."""
    from tollway.analytics.attribution import Attribution
    from tollway.analytics.rankings import RankingQuery, build_report, fetch_grouped
    from tollway.catalog.index import build_catalog

    settings = settings_or_exit(config)
    query = RankingQuery(by=by.replace("_", "-"), period=period, start=start, end=end, top=top, app=app,
                         key_id=key_id)
    catalog = build_catalog(settings)
    needs_keys = query.by == "user-country"
    try:
        if parquet is not None:
            from tollway.analytics.scan import scan_grouped

            grouped = scan_grouped(parquet, query)
            attribution = Attribution.load(None, catalog, with_keys=False)
            if needs_keys:  # owners' countries live in the keys table, not in the export
                with open_ledger(settings).connect() as conn:
                    attribution = Attribution.load(conn, catalog, with_keys=True)
        else:
            engine = open_ledger(settings)
            with engine.connect() as conn:
                grouped = fetch_grouped(conn, query)
                attribution = Attribution.load(conn, catalog, with_keys=needs_keys)
        doc = build_report(grouped, query, attribution.resolver(query.by))
    except (ReportError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if png is not None:
        from tollway.analytics.charts import render_png

        render_png(doc, png)
    if as_json:
        _emit_json(doc)
        return
    _print_rankings(doc)
    if png is not None:
        click.echo(f"chart written to {png}")


def _print_rankings(doc: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    # Piped output (files, CI logs) gets a wide table rather than rich's 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    by_period: dict[str, list[dict[str, Any]]] = {}
    for row in doc["rows"]:
        by_period.setdefault(row["period_start"], []).append(row)
    if not doc["periods"]:
        console.print("no usage in this range")
    for summary in doc["periods"]:
        start = summary["period_start"]
        table = Table(title=f"{doc['period']} of {start}: {human_tokens(summary['total_tokens'])} tokens, "
                            f"top {summary['top_n']} = {_pct(summary['top_n_share'])}")
        for column in ("#", "move", doc["by"], "tokens", "share", "change", "prompt", "completion",
                       "cache hit", "requests", "cost", "$/Mtok"):
            if column == doc["by"]:
                table.add_column(column, overflow="fold")
            else:
                table.add_column(column, justify="right", no_wrap=True)
        for row in by_period.get(start, []):
            move = row["rank_change"]
            table.add_row(
                str(row["rank"]), "new" if move is None else f"{move:+d}" if move else "=", row["key"],
                human_tokens(row["total_tokens"]), _pct(row["share"]), _pct(row["change"]),
                human_tokens(row["prompt_tokens"]), human_tokens(row["completion_tokens"]),
                _pct(row["cache_hit_share"]), f"{row['requests']:,}", f"${row['cost_usd']:,.2f}",
                "" if row["usd_per_mtok"] is None else f"{row['usd_per_mtok']:.3f}")
        console.print(table)


@report.command()
@config_option
@click.option("--what-if", "targets", multiple=True, required=True,
              help="Model id to re-price the traffic at (repeatable).")
@click.option("--model", "models", multiple=True, help="Only this source model's traffic (repeatable).")
@click.option("--provider", default=None, help="Use this provider's prices for the what-if models.")
@range_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def cost(config: str | None, targets: tuple[str, ...], models: tuple[str, ...], provider: str | None,
         start: date | None, end: date | None, as_json: bool) -> None:
    """What the range's traffic cost, and what it would have cost on other models."""
    from tollway.analytics.whatif import what_if
    from tollway.catalog.index import build_catalog
    from tollway.metering import nano_to_decimal

    settings = settings_or_exit(config)
    engine = open_ledger(settings)
    try:
        with engine.connect() as conn:
            doc = what_if(conn, build_catalog(settings), targets, start=start, end=end, models=models,
                          provider=provider)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        _emit_json(doc)
        return
    base = nano_to_decimal(doc["baseline_cost_nanousd"])
    source = ", ".join(doc["models"]) or "no traffic"
    click.echo(f"{human_tokens(doc['prompt_tokens'])} prompt ({human_tokens(doc['cached_tokens'])} cached) + "
               f"{human_tokens(doc['completion_tokens'])} completion tokens on {source}: ${base:,.2f}")
    for s in doc["scenarios"]:
        ratio = s["times_cheaper"]
        how = "" if ratio is None else f", {ratio:.1f}x less" if ratio >= 1 else f", {1 / ratio:.1f}x more"
        click.echo(f"  on {s['model']} it would have cost ${nano_to_decimal(s['cost_nanousd']):,.2f}{how}")


@report.command()
@config_option
@range_options
@click.option("--model", default=None, help="Per-request distribution of this model only.")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="Largest tasks to list.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def tasks(config: str | None, start: date | None, end: date | None, model: str | None, top: int,
          as_json: bool) -> None:
    """Tokens per task (session_id, exact) and per request (bucketed): p50, p90, p99."""
    from tollway.analytics.distributions import request_distribution, task_distribution

    engine = open_ledger(settings_or_exit(config))
    with engine.connect() as conn:
        doc = {"tasks": task_distribution(conn, start=start, end=end, top=top),
               "requests": request_distribution(conn, start=start, end=end, model=model)}
    if as_json:
        _emit_json(doc)
        return
    t, r = doc["tasks"], doc["requests"]
    click.echo(f"tasks: {t['tasks']:,} ({human_tokens(t['total_tokens'])} tokens); per task (exact): "
               + ", ".join(f"{k} {human_tokens(v)}" for k, v in t["percentiles"].items())
               + (f", max {human_tokens(t['max_tokens'])}" if t["tasks"] else ""))
    if t["tasks"]:
        click.echo(f"  {t['agentic_tasks']:,} tasks of {human_tokens(t['agentic_threshold_tokens'])}+ tokens "
                   f"hold {_pct(t['agentic_token_share'])} of task tokens")
    click.echo(f"requests: {r['requests']:,}; per request (bucketed): "
               + ", ".join(f"{k} {human_tokens(v['low'])}-{human_tokens(v['high'])}"
                           for k, v in r["percentiles"].items()))
    for task in t["largest"]:
        click.echo(f"  {task['session_id']}: {human_tokens(task['tokens'])} tokens in {task['requests']} "
                   f"requests, ${task['cost_usd']:,.2f}")
