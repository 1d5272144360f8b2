"""Options and helpers shared by the commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from tollway.config import ConfigError, Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


def config_option(fn: F) -> F:
    return click.option(
        "--config", "config", default=None, type=click.Path(dir_okay=False),
        help="Config file (default: ./tollway.yaml if present, else built-in defaults).",
    )(fn)


def settings_or_exit(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def open_ledger(settings: Settings) -> Any:
    """A migrated engine for the configured database."""
    from tollway.ledger.db import create_db_engine, migrate

    engine = create_db_engine(settings.database)
    try:
        migrate(engine)
    except Exception as exc:  # the DB URL is user input: say what failed, not a traceback
        raise click.ClickException(f"cannot open the ledger database {settings.database}: "
                                   f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    return engine
