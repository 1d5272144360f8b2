"""``tollway catalog import``: refresh prices and context lengths from an OpenRouter models list."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import click
import orjson

from tollway.catalog.index import build_catalog
from tollway.catalog.overrides import apply_import, overrides_path, plan_import
from tollway.cli.common import config_option, settings_or_exit
from tollway.config import ConfigError


@click.group()
def catalog() -> None:
    """Maintain the model catalog."""


def _as_of(path: Path) -> date | None:
    """A snapshot's date from its file name (``..._2026-08-22.json``), else today."""
    match = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


@catalog.command("import")
@config_option
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Report the differences without writing anything.")
def import_openrouter(config: str | None, file: Path, dry_run: bool) -> None:
    """Update prices and context lengths from an OpenRouter-format models JSON (GET /api/v1/models).

    Updates each model's `openrouter` endpoint prices and its context length, writing them to the
    catalog overrides file (catalog_overrides.yaml next to the config, or the config's
    `catalog_overrides:` path), which is merged over the shipped catalog.  The installed package
    is never modified.  Models the catalog doesn't have are reported, not added.
    """
    settings = settings_or_exit(config)
    try:
        payload = orjson.loads(file.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise click.ClickException(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise click.ClickException(f"{file}: expected an object with a 'data' array")
    try:
        current = build_catalog(settings)
        report = plan_import(current.models.values(), payload, source=file.name, as_of=_as_of(file))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    target = overrides_path(settings)
    for change in report.changes:
        click.echo(f"  {change.model_id}: {change.field} {_fmt(change.old)} -> {_fmt(change.new)}")
    click.echo(
        f"{len(report.changes)} change(s) in {len(report.updated_models)} model(s) from {file.name} "
        f"(as of {report.as_of})"
    )
    if report.missing_from_file:
        click.echo(
            f"{len(report.missing_from_file)} catalog model(s) not in the file (unchanged): "
            + ", ".join(report.missing_from_file[:10])
            + (" ..." if len(report.missing_from_file) > 10 else "")
        )
    if report.not_in_catalog:
        click.echo(
            f"{len(report.not_in_catalog)} model(s) in the file are not in the catalog (not added; "
            "add them under models: in your config)"
        )
    if report.skipped:
        click.echo(
            f"{len(report.skipped)} model(s) without a usable price in the file: " + ", ".join(report.skipped)
        )
    if dry_run:
        click.echo(f"dry run: {target} not written")
        return
    if not report.updated_models:
        click.echo("nothing to write")
        return
    try:
        apply_import(target, report)
    except (OSError, ConfigError) as exc:
        raise click.ClickException(f"cannot write {target}: {exc}") from None
    click.echo(f"wrote {target}")


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    return format(value, "f") if not isinstance(value, int) else f"{value:,}"
