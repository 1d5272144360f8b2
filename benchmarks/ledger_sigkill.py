"""What a ``kill -9`` of ``tollway serve`` loses from the ledger: the SIGKILL window.

Each trial starts ``tollway serve`` (its own process, one worker) in front of a stub
OpenAI upstream that counts what it served, runs closed-loop load against it, sends
SIGKILL while the load runs, restarts the gateway (which replays its journal, if any),
stops it with SIGTERM and counts the ledger.  A generation is *answered* when its client
got the whole 200 response; the ledger must hold every answered generation except the
ones the killed process had accepted in memory and not yet committed or journaled.

    .venv/bin/python benchmarks/ledger_sigkill.py [--database postgresql://...] [--trials 5]

Prints one line per trial and a JSON summary: answered, served by the upstream, in the
ledger, lost (answered but not in the ledger) and that loss in milliseconds of traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from tollway.ledger.db import create_db_engine, migrate
from tollway.ledger.keys import create_key
from tollway.ledger.schema import generations

CONFIG = """
database: {database}
catalog: false
server: {{key_cache_ttl_s: 60}}
ledger: {{journal_dir: {journal}}}
providers:
  - {{name: stub, kind: openai, base_url: "{upstream}/v1", api_key: sk-stub}}
models:
  - id: bench/echo
    author: bench
    endpoints:
      - {{provider: stub, model: echo, pricing: {{prompt: 1.0, completion: 2.0}}}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Upstream:
    """OpenAI chat completions, non-streaming; counts the responses it finished sending."""

    def __init__(self) -> None:
        self.served = 0

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.served += 1
        return web.json_response({
            "id": "chatcmpl-" + secrets.token_hex(6), "object": "chat.completion", "created": int(time.time()),
            "model": body["model"], "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                                 "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14}})


async def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            if proc.poll() is not None:
                raise RuntimeError(f"tollway serve exited with {proc.returncode}")
            try:
                async with session.get(url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("tollway serve did not become healthy")


def start_gateway(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "tollway", "serve", "--config", str(config),
                                 "--port", str(port), "--log-level", "warning"], stdout=out, stderr=out)


async def load_then_kill(url: str, key: str, proc: subprocess.Popen[bytes], concurrency: int,
                         kill_after_s: float) -> tuple[int, float]:
    """Closed-loop load; SIGKILL after ``kill_after_s``.  Returns (answered, req/s before the kill)."""
    answered = 0
    stop = asyncio.Event()
    body = {"model": "bench/echo", "messages": [{"role": "user", "content": "hello"}]}
    headers = {"Authorization": f"Bearer {key}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
                    data = await resp.read()
                    if resp.status == 200 and data.endswith(b"}"):
                        answered += 1
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.01)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        started = time.monotonic()
        await asyncio.sleep(kill_after_s)
        os.kill(proc.pid, signal.SIGKILL)
        rate = answered / (time.monotonic() - started)
        proc.wait()
        stop.set()
        await asyncio.gather(*workers)
    return answered, rate


async def trial(args: argparse.Namespace, number: int, workdir: Path) -> dict[str, Any]:
    upstream = Upstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.chat)
    runner = web.AppRunner(app)
    await runner.setup()
    upstream_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
    database = args.database or f"sqlite:///{workdir / f'ledger-{number}.db'}"
    engine = create_db_engine(database)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(generations.delete())
        _, key = create_key(conn, name=f"sigkill-{number}")
    config = workdir / f"tollway-{number}.yaml"
    config.write_text(CONFIG.format(database=database, journal=workdir / f"journal-{number}",
                                    upstream=f"http://127.0.0.1:{upstream_port}"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "serve.log"
    proc = start_gateway(config, port, log)
    await wait_healthy(url, proc)
    answered, rate = await load_then_kill(url, key, proc, args.concurrency, args.kill_after)
    served_at_kill = upstream.served
    restarted = start_gateway(config, port, log)  # replays the journal, if the killed one left any
    await wait_healthy(url, restarted)
    restarted.send_signal(signal.SIGTERM)
    restarted.wait(60)
    with engine.connect() as conn:
        in_ledger = int(conn.execute(select(func.count()).select_from(generations)).scalar_one())
    engine.dispose()
    await runner.cleanup()
    lost = max(answered - in_ledger, 0)
    return {"trial": number, "answered": answered, "served_by_upstream": served_at_kill, "in_ledger": in_ledger,
            "lost": lost, "req_per_s": round(rate, 1),
            "lost_ms_of_traffic": round(1000 * lost / rate, 1) if rate else None}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="ledger URL (default: a fresh SQLite file per trial)")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--kill-after", type=float, default=3.0, help="seconds of load before the SIGKILL")
    parser.add_argument("--workdir", type=Path, help="keep configs, journals and serve.log here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="tollway-sigkill-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        for number in range(1, args.trials + 1):
            result = await trial(args, number, workdir)
            print(json.dumps(result), flush=True)
            results.append(result)
    lost = [r["lost"] for r in results]
    print(json.dumps({"trials": len(results), "database": (args.database or "sqlite").split(":")[0],
                      "answered": sum(r["answered"] for r in results), "lost_total": sum(lost),
                      "lost_max": max(lost), "lost_ms_max": max(r["lost_ms_of_traffic"] or 0 for r in results),
                      "ledger_over_upstream": sum(r["in_ledger"] > r["served_by_upstream"] for r in results)}))


if __name__ == "__main__":
    asyncio.run(main())
