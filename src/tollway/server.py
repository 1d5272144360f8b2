"""Running the gateway under uvicorn (uvloop + httptools), one or several workers."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import click

from tollway.cli.common import open_ledger, port_is_taken, port_taken_message, settings_or_exit
from tollway.config import Settings


def run_server(config: str | None, *, host: str, port: int, workers: int, log_level: str) -> None:
    import uvicorn

    settings = settings_or_exit(config)  # validate once, before any worker starts
    try:
        taken = port_is_taken(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if taken:
        raise click.ClickException(port_taken_message(host, port))
    open_ledger(settings).dispose()  # migrate once, so workers start on a current schema
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    click.echo(describe_active_models(settings), err=True)
    common = {"host": host, "port": port, "loop": "uvloop", "http": "httptools", "lifespan": "on",
              "access_log": False, "log_level": log_level, "timeout_graceful_shutdown": 30,
              "server_header": False,
              # tollway reads no client address, so uvicorn's X-Forwarded-* rewriting is pure cost.
              "proxy_headers": False}
    click.echo(f"tollway listening on http://{host}:{port} ({workers} worker(s), "
               f"ledger {_redact(settings.database)})", err=True)
    if workers == 1:
        from tollway.app import build_app

        uvicorn.run(build_app(settings), **common)  # type: ignore[arg-type]
        return
    # Several workers: each imports the app from the environment; metrics aggregate
    # through prometheus_client's multiprocess files.
    metrics_dir = tempfile.mkdtemp(prefix="tollway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    if settings.source_path and settings.source_path != "(defaults)":
        os.environ["TOLLWAY_CONFIG"] = os.path.abspath(settings.source_path)
    try:
        uvicorn.run("tollway.app:app_from_environment", factory=True, workers=workers,
                    **common)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


def describe_active_models(settings: Settings, limit: int = 12) -> str:
    """One start-up line: which models are reachable, or that none is and how to add one."""
    from tollway.catalog import build_catalog

    catalog = build_catalog(settings)
    active = [m.id for m in catalog.listed_models()]
    if not active:
        waiting = sorted({p.api_key_env for p in catalog.providers.values()
                          if not p.active and not p.disabled and p.api_key_env})
        hint = f"export a provider's key (e.g. {', '.join(waiting[:4])})" if waiting else "set a provider's api_key"
        return (f"no active model: every request will be refused until you {hint} or add a provider "
                "and its models to the config (see 'tollway models list --all')")
    shown = ", ".join(active[:limit]) + (f" and {len(active) - limit} more" if len(active) > limit else "")
    providers = sorted({p.name for p in catalog.providers.values() if p.active})
    return f"{len(active)} active model(s) on {len(providers)} provider(s) ({', '.join(providers)}): {shown}"
