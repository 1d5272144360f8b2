"""A gateway without Redis never loads redis; one with Redis catches its errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tollway.config import parse_settings
from tollway.gateway import Gateway

_SERVE_WITHOUT_REDIS = """
import asyncio, sys
from tollway.app import build_app
from tollway.config import parse_settings
from tollway.gateway import Gateway

async def main():
    gateway = Gateway(parse_settings({"database": sys.argv[1], "catalog": False}, source="test"))
    build_app(gateway.settings, gateway)
    await gateway.start()
    try:
        print("redis" in sys.modules)
    finally:
        await gateway.stop()

asyncio.run(main())
"""


def test_a_gateway_without_redis_never_imports_it(tmp_path: Path) -> None:
    # A fresh interpreter: this test process has imported redis for other tests.
    out = subprocess.run([sys.executable, "-c", _SERVE_WITHOUT_REDIS, f"sqlite:///{tmp_path}/ledger.db"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_a_gateway_with_redis_catches_its_errors(tmp_path: Path) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError

    settings = parse_settings({"database": f"sqlite:///{tmp_path}/ledger.db", "catalog": False,
                               "redis": "redis://127.0.0.1:6379/0",
                               "limits": {"settlement_journal_dir": str(tmp_path / "journal")}}, source="test")
    limiter = Gateway(settings).limits
    assert issubclass(RedisError, limiter._store_errors)  # what its except clauses catch
    assert issubclass(RedisConnectionError, limiter._outage_errors)
