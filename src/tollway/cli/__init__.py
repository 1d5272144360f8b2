"""The ``tollway`` command.  Thin commands over the package; heavy imports stay lazy so
``tollway serve`` starts fast."""

from __future__ import annotations

import sys
from typing import Any

import click

from tollway import __version__
from tollway.cli.common import config_option
from tollway.cli.keys import keys
from tollway.cli.usage import usage


class _Main(click.Group):
    """Database errors end a command with their first line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return super().invoke(ctx)
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            raise click.ClickException(f"database error: {type(exc).__name__}: {detail}") from None


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tollway")
def main() -> None:
    """tollway: a self-hostable LLM API gateway and token-usage observatory."""


@main.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes (each with its own event loop).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              help="Least severe log messages shown (upstream failures are warnings).")
def serve(config: str | None, host: str, port: int, workers: int, log_level: str) -> None:
    """Run the gateway (applies pending ledger migrations first)."""
    from tollway.server import run_server

    run_server(config, host=host, port=port, workers=workers, log_level=log_level)


main.add_command(keys)
main.add_command(usage)


def _register_optional(group: Any) -> None:
    """Command groups that live in their own modules, registered when present."""
    import importlib

    for module_name, attr in (("tollway.cli.models", "models"), ("tollway.cli.catalog", "catalog"),
                              ("tollway.cli.report", "report"), ("tollway.cli.demo", "demo"),
                              ("tollway.cli.apps", "apps")):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        group.add_command(getattr(module, attr))


_register_optional(main)


def _untruncated_summaries(group: click.Group) -> None:
    """Command lists show each command's whole first sentence (wrapped), never cut with '...'."""
    for command in group.commands.values():
        if command.short_help is None and command.help:
            paragraph = " ".join(command.help.strip().split("\n\n")[0].split())
            sentence, dot, _ = paragraph.partition(". ")
            command.short_help = sentence + ("." if dot else "")
        if isinstance(command, click.Group):
            _untruncated_summaries(command)


_untruncated_summaries(main)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
