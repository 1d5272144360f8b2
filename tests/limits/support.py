"""Helpers for the limits tests: a stub whose usage equals tollway's worst case, gateway
replicas as ``tollway serve`` subprocesses, a private redis-server, and ledger reads."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import uvicorn
import yaml
from sqlalchemy import func, select

from tests.support.servers import free_port
from tests.support.stub_openai import StubOpenAI
from tollway.app import build_app
from tollway.config import parse_settings
from tollway.gateway import Gateway
from tollway.ledger import schema
from tollway.ledger.db import create_db_engine, migrate
from tollway.limits.capping import prompt_bound

SYSTEM_REDIS = os.environ.get("TOLLWAY_TEST_REDIS", "redis://127.0.0.1:6379/0")
PRICING = {"prompt": "1", "completion": "2"}  # USD/Mtok: 1000 / 2000 nano-USD per token
MODEL = "test/metered"


class MeteredStub(StubOpenAI):
    """Reports exactly tollway's prompt bound and ``max_tokens`` completion tokens, so
    with a 0 % margin a generation costs exactly its reservation."""

    def prompt_tokens(self, raw: bytes) -> int:
        return prompt_bound(json.loads(raw))


def request_cost_nano(body: dict[str, Any]) -> int:
    """What one request costs at :data:`PRICING` with the metered stub."""
    return prompt_bound(body) * 1000 + int(body["max_tokens"]) * 2000


def require_redis(url: str = SYSTEM_REDIS) -> str:
    """The system Redis; fails (never skips) when it is not there."""
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        assert client.ping(), f"Redis at {url} did not answer PING"
    finally:
        client.close()
    return url


def raw_config(database: str, upstream_url: str, *, redis_url: str | None = None,
               limits: dict[str, Any] | None = None, admin_key: str | None = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "database": database, "catalog": False,
        "server": {"key_cache_ttl_s": 0},
        "ledger": {"flush_interval_ms": 5},
        "limits": {"prompt_estimate_margin_pct": 0, **(limits or {})},
        "providers": [{"name": "stub", "kind": "openai", "base_url": upstream_url + "/v1",
                       "api_key": "sk-upstream-secret"}],
        "models": [{"id": MODEL, "author": "test", "endpoints": [
            {"provider": "stub", "model": "metered-upstream", "pricing": PRICING}]}],
    }
    if redis_url is not None:
        raw["redis"] = redis_url
    if admin_key is not None:
        raw["admin_key"] = admin_key
    return raw


@dataclass
class Replica:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def replicas(config: dict[str, Any], tmp_path: Path, n: int = 2, *, workers: int = 1) -> Iterator[list[Replica]]:
    """``n`` ``tollway serve`` processes on one config; SIGTERM (drain) on exit."""
    cfg = tmp_path / "tollway.yaml"
    cfg.write_text(yaml.safe_dump(config))
    started: list[Replica] = []
    try:
        for i in range(n):
            port = free_port()
            log_path = tmp_path / f"replica{i}.log"
            with log_path.open("wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tollway", "serve", "--config", str(cfg), "--port", str(port),
                     "--workers", str(workers), "--log-level", "warning"],
                    cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
            started.append(Replica(f"http://127.0.0.1:{port}", proc, log_path))
        for replica in started:
            wait_healthy(replica)
        yield started
    finally:
        for replica in started:
            if replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
        for replica in started:
            try:
                replica.proc.wait(60)
            except subprocess.TimeoutExpired:
                replica.proc.kill()


def wait_healthy(replica: Replica, timeout: float = 120) -> None:
    # Generous: on a loaded 2-core machine a replica's start (imports, migrations) took over 30 s.
    deadline = time.monotonic() + timeout
    while True:
        assert replica.proc.poll() is None, f"replica exited:\n{replica.log()}"
        try:
            if httpx.get(replica.url + "/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"replica did not become healthy:\n{replica.log()}"
        time.sleep(0.05)


def ledger_totals(database: str, key_id: str) -> tuple[int, int, int]:
    """(sum of generation costs, keys.usage_nanousd, successful generations) of a key."""
    engine = create_db_engine(database)
    migrate(engine)
    g = schema.generations
    try:
        with engine.connect() as conn:
            total = conn.execute(select(func.coalesce(func.sum(g.c.cost_nanousd), 0)).where(
                g.c.key_id == key_id)).scalar()
            usage = conn.execute(select(schema.keys.c.usage_nanousd).where(schema.keys.c.id == key_id)).scalar()
            ok = conn.execute(select(func.count()).where((g.c.key_id == key_id) & (g.c.status == "success"))
                              ).scalar()
    finally:
        engine.dispose()
    return int(total or 0), int(usage or 0), int(ok or 0)


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def start_redis(tmp_path: Path, port: int | None = None) -> RedisServer:
    """A private, non-persistent redis-server on a free port (the system Redis stays up)."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed; the limits tests need it"
    port = port or free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(port, proc)
    deadline = time.monotonic() + 10
    while True:
        try:
            if redis.Redis(port=port, socket_connect_timeout=0.5).ping():
                return server
        except redis.RedisError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.02)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def gateway(raw: dict[str, Any], clock: FakeClock | None = None) -> Iterator[tuple[str, Gateway]]:
    """The real app under uvicorn in a thread, with the gateway's clock injected."""
    settings = parse_settings(raw, source="test")
    gw = Gateway(settings, clock=clock) if clock is not None else Gateway(settings)
    server = uvicorn.Server(uvicorn.Config(build_app(settings, gw), host="127.0.0.1", port=free_port(),
                                           loop="asyncio", lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}", gw
    finally:
        server.should_exit = True
        thread.join(30)
