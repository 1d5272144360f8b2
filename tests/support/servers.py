"""Real servers on loopback for tests: aiohttp stubs and the tollway gateway, each on its
own event loop in a background thread, and PostgreSQL databases made per test run."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from aiohttp import web

from tollway.app import build_app
from tollway.config import Settings, parse_settings
from tollway.ledger.db import create_db_engine, migrate
from tollway.ledger.keys import create_key

PG_ADMIN_URL = os.environ.get("TOLLWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopThread:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@contextmanager
def aiohttp_server(app: web.Application) -> Iterator[str]:
    """Serve an aiohttp app on 127.0.0.1; yields its base URL."""
    lt = LoopThread()
    port = free_port()
    runner = web.AppRunner(app, shutdown_timeout=0.5)

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    lt.run(start())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        lt.run(runner.cleanup())
        lt.stop()


@contextmanager
def gateway_server(settings: Settings) -> Iterator[tuple[str, Any]]:
    """Serve tollway itself (uvicorn, real socket); yields (base URL, the Starlette app)."""
    port = free_port()
    app = build_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, loop="asyncio", lifespan="on",
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("gateway did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(30)


def make_settings(database: str, upstream_url: str, *, upstream_key: str = "sk-upstream-secret",
                  extra: dict[str, Any] | None = None, models: list[dict[str, Any]] | None = None,
                  providers: list[dict[str, Any]] | None = None) -> Settings:
    raw: dict[str, Any] = {
        "database": database,
        "catalog": False,
        "server": {"key_cache_ttl_s": 0},
        "ledger": {"flush_interval_ms": 5},
        "providers": providers or [{"name": "stub", "kind": "openai", "base_url": upstream_url + "/v1",
                                    "api_key": upstream_key}],
        "models": models or [{"id": "test/echo", "author": "test", "endpoints": [
            {"provider": "stub", "model": "echo-upstream",
             "pricing": {"prompt": "1.25", "completion": "10", "cache_read": "0.125"}}]}],
    }
    raw.update(extra or {})
    return parse_settings(raw, source="test")


def new_key(database: str, name: str = "alice", **kwargs: Any) -> tuple[str, str]:
    """Create a key directly in the ledger; returns (key id, plain key)."""
    engine = create_db_engine(database)
    migrate(engine)
    with engine.begin() as conn:
        info, plain = create_key(conn, name=name, **kwargs)
    engine.dispose()
    return info.id, plain


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module; dropped afterwards.

    Fails (does not skip) when PostgreSQL is unreachable: the suite promises both ledgers.
    """
    import psycopg

    name = "tollway_t_" + secrets.token_hex(6)
    admin = PG_ADMIN_URL
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
