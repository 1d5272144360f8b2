"""``tollway usage import FILE`` and ``tollway usage export``; attached to the ``usage`` group."""

from __future__ import annotations

from pathlib import Path

import click

from tollway.cli.common import config_option, open_ledger, settings_or_exit


@click.command("import")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl", "parquet"]), default=None,
              help="File format (default: from the file name).")
@click.option("--period", type=click.Choice(["day", "week"]), default=None,
              help="The rows are aggregates per day or per week (period_start) rather than events.")
def import_cmd(config: str | None, file: Path, fmt: str | None, period: str | None) -> None:
    """Load usage (events or per-period aggregates) into the rollups; re-imports are no-ops."""
    from tollway.analytics.importer import UsageImportError, import_usage
    from tollway.catalog.index import build_catalog
    from tollway.metering import nano_to_decimal

    settings = settings_or_exit(config)
    engine = open_ledger(settings)
    try:
        result = import_usage(engine, file, fmt=fmt, period=period, catalog=build_catalog(settings))
    except UsageImportError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        engine.dispose()
    if result.skipped:
        click.echo(f"{file}: already imported (same content); nothing changed")
        return
    click.echo(f"{file}: imported {result.rows:,} rows as batch {result.batch_id}: "
               f"{result.total_tokens:,} tokens, ${nano_to_decimal(result.cost_nanousd):f}")


@click.command("export")
@config_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "jsonl"]), default="parquet",
              show_default=True, help="File format (Parquet keeps types; DuckDB and pandas read it directly).")
@click.option("--table", type=click.Choice(["generations", "hourly"]), default="generations",
              show_default=True, help="The raw ledger (events), or the hourly rollup (incl. imports).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (default: tollway-<table>.<format>).")
def export_cmd(config: str | None, fmt: str, table: str, out: Path | None) -> None:
    """Write the ledger out for other tools (DuckDB, pandas, spreadsheets)."""
    from tollway.analytics.export import export_ledger

    target = out or Path(f"tollway-{table}.{fmt}")
    engine = open_ledger(settings_or_exit(config))
    try:
        rows = export_ledger(engine, target, fmt=fmt, table=table)
    finally:
        engine.dispose()
    click.echo(f"wrote {rows:,} rows to {target}")
