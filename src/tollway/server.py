"""Running the gateway under uvicorn (uvloop + httptools), one or several workers."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

import click

from tollway.cli.common import open_ledger, settings_or_exit


def run_server(config: str | None, *, host: str, port: int, workers: int, log_level: str) -> None:
    import uvicorn

    settings = settings_or_exit(config)  # validate once, before any worker starts
    open_ledger(settings).dispose()  # migrate once, so workers start on a current schema
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
