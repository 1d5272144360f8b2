"""``tollway apps``: the apps seen in the ledger and their categories."""

from __future__ import annotations

import click

from tollway.cli.common import config_option, open_ledger, settings_or_exit
from tollway.ledger.apps import CATEGORIES


@click.group()
def apps() -> None:
    """Apps (HTTP-Referer / X-OpenRouter-Title) and their categories."""


@apps.command("set-category")
@config_option
@click.argument("app")
@click.argument("category", type=click.Choice(CATEGORIES))
def set_category_command(config: str | None, app: str, category: str) -> None:
    """Set APP's category (overrides its X-OpenRouter-Categories header from now on)."""
    from tollway.ledger.apps import set_category

    engine = open_ledger(settings_or_exit(config))
    with engine.begin() as conn:
        set_category(conn, app, category)
    engine.dispose()
    click.echo(f"{app}: {category}")


@apps.command("list")
@config_option
def list_command(config: str | None) -> None:
    """Every app with a title or a category."""
    from sqlalchemy import select

    from tollway.ledger.apps import apps as apps_table

    engine = open_ledger(settings_or_exit(config))
    with engine.connect() as conn:
        rows = conn.execute(select(apps_table.c.app, apps_table.c.title, apps_table.c.category,
                                   apps_table.c.set_by).order_by(apps_table.c.app)).all()
    engine.dispose()
    for app, title, category, set_by in rows:
        click.echo(f"{app}\t{title or ''}\t{category or ''}\t{set_by}")
