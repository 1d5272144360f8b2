"""``tollway usage summary`` (and the import/export commands registered beside it)."""

from __future__ import annotations

import json
from decimal import Decimal

import click

from tollway.cli.common import config_option, open_ledger, settings_or_exit
from tollway.ledger.queries import usage_summary
from tollway.metering import nano_to_decimal


@click.group()
def usage() -> None:
    """Token usage and cost from the ledger."""


@usage.command("summary")
@config_option
@click.option("--key", "key_ref", default=None, help="Only this key (id or name).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on the last line.")
def summary(config: str | None, key_ref: str | None, as_json: bool) -> None:
    """Totals over the generations charged to keys (successful, or cut short and billed)."""
    engine = open_ledger(settings_or_exit(config))
    with engine.connect() as conn:
        key_id = None
        if key_ref is not None:
            from tollway.ledger.keys import find_key

            info = find_key(conn, key_ref)
            if info is None:
                raise click.ClickException(f"no key matches {key_ref!r}")
            key_id = info.id
        totals = usage_summary(conn, key_id=key_id)
    engine.dispose()
    cost = nano_to_decimal(totals["cost_nanousd"])
    if as_json:
        # cost_usd is written from the exact decimal, not through a float.
        doc = json.dumps({k: v for k, v in totals.items()})
        click.echo(doc[:-1] + f', "cost_usd": {cost.normalize():f}}}')
        return
    lines = [("requests (answered)", f"{totals['requests']:,}"),
             ("prompt tokens", f"{totals['prompt_tokens']:,}"),
             ("  of which cached", f"{totals['cached_tokens']:,}"),
             ("completion tokens", f"{totals['completion_tokens']:,}"),
             ("  of which reasoning", f"{totals['reasoning_tokens']:,}"),
             ("cost", usd(cost))]
    width = max(len(label) for label, _ in lines)
    value_width = max(len(value) for _, value in lines)
    for label, value in lines:
        click.echo(f"{label:<{width}}  {value:>{value_width}}")


def usd(amount: Decimal) -> str:
    """Dollars for people: cents from $1 up, four significant digits below (the JSON is exact)."""
    if amount == 0:
        return "$0.00"
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    return f"${float(amount):#.4g}" if abs(amount) >= Decimal("0.0001") else f"${float(amount):.2e}"


def _register_io() -> None:
    import importlib

    try:
        usage_io = importlib.import_module("tollway.cli.usage_io")
    except ModuleNotFoundError as exc:
        if exc.name != "tollway.cli.usage_io":
            raise
        return
    usage.add_command(usage_io.import_cmd, "import")
    usage.add_command(usage_io.export_cmd, "export")


_register_io()
