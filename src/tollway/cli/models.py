"""``tollway models list|show|compare``: browse the merged catalog and price workloads."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import click
import orjson

from tollway.catalog.index import Catalog, build_catalog
from tollway.catalog.selection import MAKER, Workload, compare, pick_endpoint
from tollway.cli.common import config_option, settings_or_exit
from tollway.config import ConfigError, ModelConfig


def _catalog(config: str | None) -> Catalog:
    settings = settings_or_exit(config)
    try:
        return build_catalog(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _model(catalog: Catalog, model_id: str) -> ModelConfig:
    model = catalog.models.get(model_id)
    if model is None:
        near = [m for m in catalog.models if model_id.lower() in m.lower()][:5]
        hint = f"; did you mean {', '.join(near)}?" if near else "; see `tollway models list --all`"
        raise click.ClickException(f"unknown model {model_id!r}{hint}")
    return model


def _usd(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if value >= Decimal("0.1") or value == 0 else f"${value:,.4f}".rstrip("0")


def _num(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _print_json(payload: Any) -> None:
    click.echo(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode())


def _console() -> Any:
    from rich.console import Console

    # piped output (tests, `| less`) gets a wide table instead of rich's 80-column fallback
    return Console() if sys.stdout.isatty() else Console(width=200)


@click.group()
def models() -> None:
    """Browse the model catalog (shipped catalog merged with your config)."""


@models.command("list")
@config_option
@click.option("--author", help="Only this author (e.g. deepseek, anthropic).")
@click.option("--origin", help="Only models whose maker is from this country (ISO code, e.g. CN, US, FR).")
@click.option("--open-weights", is_flag=True, help="Only open-weights models.")
@click.option("--sort", type=click.Choice(["name", "price", "context"]), default="name", show_default=True,
              help="Order by id, by price at the cheapest endpoint, or by context length (largest first).")
@click.option("--all", "include_all", is_flag=True, help="Include models with no active endpoint.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_models(
    config: str | None,
    author: str | None,
    origin: str | None,
    open_weights: bool,
    sort: str,
    include_all: bool,
    as_json: bool,
) -> None:
    """List models: id, maker and origin, weights, context, price at the cheapest endpoint."""
    catalog = _catalog(config)
    rows = []
    for model in catalog.listed_models(include_inactive=include_all):
        if author and model.author_name.lower() != author.lower():
            continue
        if origin and (model.author_country or "").upper() != origin.upper():
            continue
        if open_weights and not model.open_weights:
            continue
        rows.append((model, pick_endpoint(catalog, model)))
    if sort == "price":
        rows.sort(key=lambda r: (r[1] is None, r[1].endpoint.pricing.prompt if r[1] else 0, r[0].id))
    elif sort == "context":
        rows.sort(key=lambda r: (-(r[0].context_length or 0), r[0].id))
    else:
        rows.sort(key=lambda r: r[0].id)
    if as_json:
        _print_json(
            [
                {
                    "id": m.id,
                    "name": m.name,
                    "author": m.author_name,
                    "author_country": m.author_country,
                    "open_weights": m.open_weights,
                    "context_length": m.context_length,
                    "active": catalog.is_active(m),
                    "provider": c.endpoint.provider if c else None,
                    "prompt_usd_per_mtok": _num(c.endpoint.pricing.prompt) if c else None,
                    "completion_usd_per_mtok": _num(c.endpoint.pricing.completion) if c else None,
                }
                for m, c in rows
            ]
        )
        return
    if not rows:
        hint = "" if include_all else " with an active endpoint (set a provider's API key, or pass --all)"
        click.echo(f"no models{hint}")
        return
    from rich.table import Table

    table = Table(title=f"{len(rows)} models")
    for column in ("id", "origin", "weights", "context", "provider", "in $/M", "out $/M"):
        table.add_column(column, justify="right" if column in ("context", "in $/M", "out $/M") else "left")
    for m, c in rows:
        table.add_row(
            m.id,
            m.author_country or "?",
            "open" if m.open_weights else "closed",
            f"{m.context_length:,}" if m.context_length else "-",
            (c.endpoint.provider + ("" if c.active else " (inactive)")) if c else "-",
            _usd(c.endpoint.pricing.prompt) if c else "-",
            _usd(c.endpoint.pricing.completion) if c else "-",
        )
    _console().print(table)


@models.command("show")
@config_option
@click.argument("model_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(config: str | None, model_id: str, as_json: bool) -> None:
    """Everything the catalog knows about one model, with every endpoint."""
    catalog = _catalog(config)
    model = _model(catalog, model_id)
    if as_json:
        _print_json(model.model_dump(mode="json"))
        return
    arch = model.architecture
    sizes = ""
    if arch.total_params_b is not None:
        sizes = f" {_num(arch.total_params_b)}B total"
        if arch.kind == "moe" and arch.active_params_b is not None:
            sizes += f", {_num(arch.active_params_b)}B active"
    click.echo(f"{model.id}  {model.name or ''}")
    click.echo(
        f"  maker: {model.author_name} ({model.author_country or 'unknown country'})"
        f"  weights: {'open' if model.open_weights else 'closed' if model.open_weights is False else '?'}"
        f"  architecture: {arch.kind}{sizes}"
    )
    click.echo(
        f"  context: {model.context_length or '-'}  modalities: {'+'.join(model.input_modalities)}"
        f" -> {'+'.join(model.output_modalities)}  tokenizer: {model.tokenizer or '-'}"
        f"  released: {model.release_date or '-'}"
    )
    from rich.table import Table

    table = Table(title="endpoints")
    for column in (
        "provider",
        "upstream model",
        "active",
        "hosted",
        "in $/M",
        "out $/M",
        "cache read $/M",
        "quant",
        "price source",
        "date",
    ):
        table.add_column(column)
    for endpoint in model.endpoints:
        provider = catalog.providers.get(endpoint.provider)
        p = endpoint.pricing
        table.add_row(
            endpoint.provider,
            endpoint.model,
            "yes" if provider and provider.active else "no",
            endpoint.hosting_country or (provider.hosting_country if provider else None) or "-",
            _usd(p.prompt),
            _usd(p.completion),
            _usd(p.cache_read),
            endpoint.quantization or "-",
            endpoint.price_source or "-",
            str(endpoint.price_date or "-"),
        )
    _console().print(table)


@models.command("compare")
@config_option
@click.argument("model_ids", nargs=-1, required=True)
@click.option(
    "--input-ratio",
    default="1:1",
    show_default=True,
    help="Input:output tokens of the workload, e.g. 3:1 for three prompt tokens per completion token.",
)
@click.option(
    "--provider", help=f"Price every model at this provider ('{MAKER}': each model's own maker's API)."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def compare_models(
    config: str | None, model_ids: tuple[str, ...], input_ratio: str, provider: str | None, as_json: bool
) -> None:
    """Price the same workload on each model and show how many times the cheapest each costs.

    Each model is priced at its cheapest endpoint (active if any, else the cheapest listed), or
    at --provider.
    """
    catalog = _catalog(config)
    try:
        workload = Workload.parse(input_ratio)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--input-ratio") from None
    chosen = [_model(catalog, i) for i in model_ids]
    rows = compare(catalog, chosen, workload, provider)
    if as_json:
        _print_json(
            {
                "input_ratio": input_ratio,
                "provider": provider,
                "models": [
                    {
                        "id": r.model.id,
                        "provider": r.choice.endpoint.provider if r.choice else None,
                        "active": r.choice.active if r.choice else None,
                        "prompt_usd_per_mtok": _num(r.choice.endpoint.pricing.prompt) if r.choice else None,
                        "completion_usd_per_mtok": _num(r.choice.endpoint.pricing.completion)
                        if r.choice
                        else None,
                        "blended_usd_per_mtok": _num(r.blended),
                        "input_ratio": _num(r.input_ratio),
                        "output_ratio": _num(r.output_ratio),
                        "blended_ratio": _num(r.blended_ratio),
                        "price_source": r.choice.endpoint.price_source if r.choice else None,
                    }
                    for r in rows
                ],
            }
        )
        return
    from rich.table import Table

    table = Table(title=f"workload {input_ratio} (input:output); ratios vs the cheapest")
    for column in (
        "model",
        "provider",
        "in $/M",
        "out $/M",
        "blended $/M",
        "x input",
        "x output",
        "x blended",
    ):
        table.add_column(column, justify="left" if column in ("model", "provider") else "right")

    def times(value: Decimal | None) -> str:
        return "-" if value is None else f"{value:.1f}x"

    for r in rows:
        if r.choice is None:
            where = f"no endpoint at {provider}" if provider else "no endpoint"
            table.add_row(r.model.id, where, "-", "-", "-", "-", "-", "-")
            continue
        p = r.choice.endpoint.pricing
        table.add_row(
            r.model.id,
            r.choice.endpoint.provider + ("" if r.choice.active else " (inactive)"),
            _usd(p.prompt),
            _usd(p.completion),
            _usd(r.blended),
            times(r.input_ratio),
            times(r.output_ratio),
            times(r.blended_ratio),
        )
    _console().print(table)
    priced = [r for r in rows if r.blended is not None]
    if len(priced) >= 2:
        top = max(priced, key=lambda r: r.blended or 0)
        low = min(priced, key=lambda r: r.blended or 0)
        if top is not low and top.input_ratio is not None and top.choice and low.choice:
            click.echo(
                f"{top.model.id} vs {low.model.id}: {top.input_ratio:.1f}x on input tokens "
                f"({_usd(top.choice.endpoint.pricing.prompt)} vs {_usd(low.choice.endpoint.pricing.prompt)}"
                f" per million), {times(top.output_ratio)} on output, {times(top.blended_ratio)} blended."
            )
