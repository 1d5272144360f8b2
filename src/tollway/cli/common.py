"""Options and helpers shared by the commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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


def tollway_command() -> str:
    """How to run ``tollway`` from the user's shell, as it can be typed there.

    ``tollway`` when that name on PATH is this very program; otherwise the script's own path
    (``.venv/bin/tollway`` after the README's commands without an activated venv), relative
    to the current directory when it lies below it.
    """
    import os
    import shutil
    import sys

    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or script.name != "tollway" or not script.exists():
        script = Path(sys.executable).parent / "tollway"  # `python -m tollway` from a venv
    on_path = shutil.which("tollway")
    if on_path is not None and os.path.realpath(on_path) == os.path.realpath(script):
        return "tollway"
    if not script.exists():
        return f"{sys.executable} -m tollway"
    resolved = script if script.is_absolute() else Path.cwd() / script
    try:
        return "./" + str(resolved.relative_to(Path.cwd()))
    except ValueError:
        return str(resolved)


def port_taken_message(host: str, port: int, flag: str = "--port") -> str:
    """What to tell someone whose port is in use (instead of a bind traceback)."""
    return (f"port {port} on {host} is already in use (another tollway, or another program); "
            f"choose another with {flag} N, e.g. {flag} {port + 1}")


def port_is_taken(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails with 'address in use' (as the server's own bind would)."""
    import errno
    import socket

    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False
