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
from tollway.cli.report_tables import human_tokens, pct


class DimensionChoice(click.Choice):  # type: ignore[type-arg]
    """The dimensions, listed once in --help; ``user_country`` is accepted for ``user-country``."""

    def __init__(self) -> None:
        super().__init__(DIMENSIONS)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(value.replace("_", "-") if isinstance(value, str) else value, param, ctx)


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


@click.group()
def report() -> None:
    """Usage analytics: rankings (by model, author, origin and more), what-if cost, task sizes."""


@report.command()
@config_option
@click.option("--by", type=DimensionChoice(), default="model", show_default=True,
              help="Dimension to rank (origin: the model maker's country).")
@click.option("--period", type=click.Choice(PERIODS), default="week", show_default=True,
              help="day, week (Monday-Sunday UTC), month, or total over the range.")
@range_options
@click.option("--top", type=click.IntRange(min=1), default=None,
              help="Rows per period (ranks and shares still count every key; also the N of concentration).")
@click.option("--app", default=None, help="Only traffic from this app (HTTP-Referer).")
@click.option("--key", "key_id", default=None, help="Only traffic of this key id.")
@click.option("--parquet", default=None,
              help="Scan exported Parquet (path or glob) with DuckDB instead of the rollups.")
@click.option("--pivot", is_flag=True,
              help="One compact table of each key's share per period, instead of a table per period.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw the chart to this PNG file.")
def rankings(config: str | None, by: str, period: str, start: date | None, end: date | None,
             top: int | None, app: str | None, key_id: str | None, parquet: str | None, pivot: bool,
             as_json: bool, png: Path | None) -> None:
    """Token volume ranked by a dimension, per period, with share and change."""
    from tollway.analytics.attribution import Attribution
    from tollway.analytics.rankings import RankingQuery, build_report, fetch_grouped
    from tollway.catalog.index import build_catalog

    settings = settings_or_exit(config)
    query = RankingQuery(by=by, period=period, start=start, end=end, top=top, app=app,
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
        from tollway.analytics.charts import origins_from_catalog, render_png

        render_png(doc, png, origins=origins_from_catalog(query.by, catalog))
    if as_json:
        _emit_json(doc)
        return
    _print_rankings(doc, pivot=pivot)
    if png is not None:
        click.echo(f"chart written to {png}")


def _print_rankings(doc: dict[str, Any], *, pivot: bool) -> None:
    from rich.console import Console

    from tollway.cli.report_tables import period_tables, pivot_table

    # Piped output (files, CI logs) gets a wide table rather than rich's 80-column default.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if not doc["periods"]:
        console.print("no usage in this range")
        return
    if pivot and doc["period"] != "total":
        console.print(pivot_table(doc))
        return
    for table in period_tables(doc):
        console.print(table)


@report.command()
@config_option
@click.option("--what-if", "targets", multiple=True,
              help="Model id(s) to re-price the traffic at: --what-if A B, or --what-if A --what-if B.")
@click.argument("more_targets", nargs=-1, metavar="[MODEL]...")
@click.option("--model", "models", multiple=True, help="Only this source model's traffic (repeatable).")
@click.option("--provider", default=None, help="Use this provider's prices for the what-if models.")
@range_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def cost(config: str | None, targets: tuple[str, ...], more_targets: tuple[str, ...], models: tuple[str, ...],
         provider: str | None, start: date | None, end: date | None, as_json: bool) -> None:
    """What the range's traffic cost, and what it would have cost on other models.

    The models to compare follow --what-if, space-separated or each with its own --what-if.
    """
    from tollway.analytics.whatif import what_if

    targets = tuple(dict.fromkeys(t.strip() for t in (*targets, *more_targets) if t.strip()))
    if not targets:
        raise click.UsageError("name at least one model to compare: --what-if MODEL [MODEL]...")
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
    source = _source_models(doc["models"])
    click.echo(f"{human_tokens(doc['prompt_tokens'])} prompt ({human_tokens(doc['cached_tokens'])} cached) + "
               f"{human_tokens(doc['completion_tokens'])} completion tokens on {source}: ${base:,.2f}")
    for s in doc["scenarios"]:
        ratio = s["times_cheaper"]
        how = "" if ratio is None else f", {ratio:.1f}x less" if ratio >= 1 else f", {1 / ratio:.1f}x more"
        click.echo(f"  on {s['model']} it would have cost ${nano_to_decimal(s['cost_nanousd']):,.2f}{how}")


def _source_models(models: list[str], shown: int = 3) -> str:
    """'3 models (a, b, c)' or '21 models (a, b, c and 18 more; --json lists them)'."""
    if not models:
        return "no traffic"
    if len(models) == 1:
        return models[0]
    more = f" and {len(models) - shown} more; --json lists them" if len(models) > shown else ""
    return f"{len(models)} models ({', '.join(models[:shown])}{more})"


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
                   f"hold {pct(t['agentic_token_share'])} of task tokens")
    click.echo(f"requests: {r['requests']:,}; per request (bucketed): "
               + ", ".join(f"{k} {human_tokens(v['low'])}-{human_tokens(v['high'])}"
                           for k, v in r["percentiles"].items()))
    for task in t["largest"]:
        click.echo(f"  {task['session_id']}: {human_tokens(task['tokens'])} tokens in {task['requests']} "
                   f"requests, ${task['cost_usd']:,.2f}")
