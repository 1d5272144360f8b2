"""Reconciliation soak: two tollway replicas on PostgreSQL + Redis under faults, then the books.

Not a timed test: a campaign whose report says whether the money adds up.  What it runs:

* two ``tollway serve`` replicas (subprocesses) sharing one fresh PostgreSQL database and Redis,
  each reached through a TCP proxy this script owns (so blips disturb nobody else);
* two fake upstreams (``shared/bench/upstream.py``, providers ``a`` and ``b`` of one model),
  each failing 30% of requests, the kind rotating every 2 s among 500, 429, hang and
  mid-stream drop;
* closed-loop clients: chat (JSON and SSE), Anthropic messages, streams the client cancels
  after a few chunks, hostile headers (X-Title/HTTP-Referer/session ids over the column
  sizes, NUL bytes), unlimited keys and limited keys driven to their limits;
* a Redis blip, a PostgreSQL blip, and one SIGKILL + restart of replica 1.

Then it stops the faults, lets the writers drain, stops the replicas gracefully and reconciles:
every answered generation id against the ledger; the ledger's tokens against what the
upstreams counted as served; per key ``keys.usage_nanousd`` == ledger sum == Redis spend
counter; no limited key over its limit; responses by status (any 500 is a bug; 502/503 are
upstream or dependency outages, expected here).

Run from the repository root with the project's venv (PostgreSQL and Redis on loopback)::

    .venv/bin/python benchmarks/soak.py --duration 300 --out /tmp/soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.servers import PG_ADMIN_URL, free_port  # noqa: E402
from tests.support.tcp_proxy import TcpProxy  # noqa: E402

BENCH_UPSTREAM = Path(os.environ.get("TOLLWAY_BENCH_UPSTREAM", REPO.parent / "shared" / "bench" / "upstream.py"))
ADMIN = "soak-admin-" + secrets.token_hex(4)
MODEL = "bench/echo"
FAULT_KINDS = ("500", "429", "hang", "drop-mid-stream")
LIMIT_USD = "0.004"  # a limited key reaches it after ~60 requests


# -- processes -------------------------------------------------------------------------------


class Upstream:
    def __init__(self, workdir: Path, name: str, seed: int) -> None:
        self.port_file = workdir / f"upstream-{name}.port"
        self.log = open(workdir / f"upstream-{name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH_UPSTREAM), "--port", "0", "--port-file", str(self.port_file),
             "--hang-s", "4", "--chunks", "16", "--stream-chunks", "24", "--chunk-delay-ms", "15",
             "--seed", str(seed)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"upstream {name} did not start (see {self.log.name})")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{int(self.port_file.read_text())}"

    async def configure(self, session: aiohttp.ClientSession, **values: Any) -> None:
        async with session.post(self.url + "/_bench/config", json=values) as resp:
            resp.raise_for_status()

    async def stats(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(self.url + "/_bench/stats") as resp:
            doc: dict[str, Any] = await resp.json()
            return doc.get("stats", doc) if isinstance(doc.get("stats"), dict) else doc

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class Replica:
    def __init__(self, index: int, config: Path, workdir: Path) -> None:
        self.index, self.config, self.workdir = index, config, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.workdir / f"replica-{self.index}-{self.starts}.log", "wb")  # noqa: SIM115
        tollway = str(Path(sys.executable).parent / "tollway")
        self.proc = subprocess.Popen([tollway, "serve", "--config", str(self.config), "--host", "127.0.0.1",
                                      "--port", str(self.port), "--log-level", "warning"],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)

    async def wait_healthy(self, session: aiohttp.ClientSession, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.index} exited (see {self.workdir})")
            try:
                async with session.get(self.url + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError(f"replica {self.index} not healthy after {timeout}s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- load ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    replica: int
    key: str
    started: float
    ended: float = 0.0
    status: int | None = None  # None: no HTTP response (connection refused or reset)
    generation_id: str | None = None
    error: str | None = None
    hostile: bool = False
    max_tokens: int = 0


@dataclass
class Keys:
    unlimited: list[tuple[str, str]] = field(default_factory=list)  # (id, plain)
    limited: list[tuple[str, str]] = field(default_factory=list)


def hostile_extras(rng: random.Random) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body fields past the ledger's column sizes, or with NUL bytes."""
    choice = rng.randrange(6)
    if choice == 0:
        return {"X-Title": "T" * rng.randint(501, 3000)}, {}
    if choice == 1:
        return {"HTTP-Referer": "https://example.com/" + "r" * rng.randint(500, 3000)}, {}
    if choice == 2:
        return {"x-session-id": "s" * rng.randint(201, 1000)}, {}
    if choice == 3:
        return {}, {"session_id": "nul\x00session"}
    if choice == 4:
        return {}, {"session_id": "x" * 5000, "user": "u\x00" * 50}
    return {"X-Title": "ünïcödé ✓ " * 40}, {}


def request_for(kind: str, rng: random.Random, extra: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    tokens = rng.randint(1, 40)
    messages = [{"role": "user", "content": "soak " + "w" * rng.randint(1, 400)}]
    if kind == "messages":
        return "/v1/messages", {"model": MODEL, "max_tokens": tokens, "messages": messages, **extra}
    body = {"model": MODEL, "max_tokens": tokens, "messages": messages, **extra}
    if kind in ("stream", "cancel"):
        body.update(stream=True, stream_options={"include_usage": True})
    return "/v1/chat/completions", body


def _error_message(raw: bytes) -> str:
    """The error message without ids and numbers, so equal causes count together."""
    try:
        doc = json.loads(raw)
        message = str(doc["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = raw[:80].decode(errors="replace")
    return "".join("#" if ch.isdigit() else ch for ch in message)[:90]


async def one_request(session: aiohttp.ClientSession, replicas: list[Replica], keys: Keys,
                      rng: random.Random) -> Outcome:
    limited = rng.random() < 0.4
    key_id, plain = rng.choice(keys.limited if limited else keys.unlimited)
    kind = rng.choices(["chat", "stream", "cancel", "messages"], weights=[40, 30, 12, 18])[0]
    hostile = rng.random() < 0.2
    headers, extra = hostile_extras(rng) if hostile else ({}, {})
    path, body = request_for(kind, rng, extra)
    replica = rng.randrange(len(replicas))
    headers["Authorization"] = f"Bearer {plain}"
    out = Outcome(kind=kind, replica=replica, key=key_id, started=time.time(), hostile=hostile,
                  max_tokens=int(body["max_tokens"]))
    try:
        async with session.post(replicas[replica].url + path, json=body, headers=headers) as resp:
            out.status = resp.status
            out.generation_id = resp.headers.get("X-Generation-Id")
            if kind == "cancel" and resp.status == 200:
                for _ in range(rng.randint(1, 4)):  # read a few events, then walk away
                    if not await resp.content.readline():
                        break
                resp.close()
            else:
                raw = await resp.read()
                if resp.status >= 500:
                    out.error = _error_message(raw)
    except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
        out.error = type(exc).__name__
        await asyncio.sleep(0.2)  # a replica that is down: do not count thousands of refusals
    out.ended = time.time()
    return out


async def client_loop(session: aiohttp.ClientSession, replicas: list[Replica], keys: Keys, seed: int,
                      stop_at: float, outcomes: list[Outcome]) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        outcomes.append(await one_request(session, replicas, keys, rng))


# -- the run ---------------------------------------------------------------------------------


def write_config(path: Path, database: str, redis_url: str, upstreams: list[Upstream], journal: Path) -> None:
    providers = [{"name": name, "kind": "openai", "base_url": up.url + "/v1", "api_key": "sk-bench"}
                 for name, up in zip("ab", upstreams, strict=True)]
    config = {
        "database": database, "redis": redis_url, "admin_key": ADMIN, "catalog": False,
        "timeouts": {"connect": 2, "first_byte": 3, "idle": 3, "total": 15},
        # Each replica its own journal, as on separate hosts; a restart replays its own.
        "ledger": {"flush_interval_ms": 50, "journal_dir": str(journal)},
        "server": {"key_cache_ttl_s": 2, "key_cache_stale_s": 60},
        "routing": {"breaker_cooldown_s": 2, "seed": 7},
        "providers": providers,
        "models": [{"id": MODEL, "author": "bench", "endpoints": [
            {"provider": p["name"], "model": "echo", "pricing": {"prompt": "1", "completion": "2"}}
            for p in providers]}],
    }
    path.write_text(json.dumps(config, indent=1))  # JSON is YAML


async def create_keys(session: aiohttp.ClientSession, replica: Replica, unlimited: int, limited: int) -> Keys:
    keys = Keys()
    for i in range(unlimited + limited):
        body: dict[str, Any] = {"name": f"soak-{i}"}
        if i >= unlimited:
            body["limit"] = LIMIT_USD
        async with session.post(replica.url + "/api/v1/keys", json=body,
                                headers={"Authorization": f"Bearer {ADMIN}"}) as resp:
            doc = await resp.json()
            assert resp.status == 201, doc
        (keys.limited if i >= unlimited else keys.unlimited).append((doc["data"]["hash"], doc["key"]))
    return keys


async def rotate_faults(session: aiohttp.ClientSession, upstreams: list[Upstream], rate: float, stop_at: float,
                        seed: int) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        for up in upstreams:
            await up.configure(session, fault=rng.choice(FAULT_KINDS), fault_rate=rate)
        await asyncio.sleep(2)
    for up in upstreams:
        await up.configure(session, fault="none", fault_rate=0.0)


async def blip(proxy: TcpProxy, seconds: float, events: list[dict[str, Any]], name: str) -> None:
    events.append({"event": f"{name} down", "at": time.time()})
    await asyncio.to_thread(proxy.down)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(proxy.up)
    events.append({"event": f"{name} up", "at": time.time()})


async def chaos(session: aiohttp.ClientSession, duration: float, pg: TcpProxy, redis_proxy: TcpProxy,
                replicas: list[Replica], events: list[dict[str, Any]], blip_s: float) -> None:
    start = time.monotonic()

    async def at(fraction: float) -> None:
        await asyncio.sleep(max(0.0, start + duration * fraction - time.monotonic()))

    await at(0.2)
    await blip(redis_proxy, blip_s, events, "redis")
    await at(0.4)
    await blip(pg, blip_s, events, "postgresql")
    await at(0.6)
    events.append({"event": "SIGKILL replica 1", "at": time.time()})
    await asyncio.to_thread(replicas[1].kill)
    await asyncio.sleep(2)
    replicas[1].start()
    await replicas[1].wait_healthy(session)
    events.append({"event": "replica 1 restarted", "at": time.time()})


async def run(args: argparse.Namespace, workdir: Path, direct_db: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    pg_url = make_url(direct_db)
    pg = TcpProxy(pg_url.host or "127.0.0.1", pg_url.port or 5432)
    redis_proxy = TcpProxy("127.0.0.1", args.redis_port)
    pg.up()
    redis_proxy.up()
    redis_db = args.redis_db
    upstreams = [Upstream(workdir, "a", 11), Upstream(workdir, "b", 12)]
    proxied_db = pg_url.set(port=pg.port).render_as_string(hide_password=False)
    replicas = []
    for index in (0, 1):
        config = workdir / f"tollway-{index}.yaml"
        write_config(config, proxied_db, f"redis://127.0.0.1:{redis_proxy.port}/{redis_db}", upstreams,
                     workdir / f"journal-{index}")
        replicas.append(Replica(index, config, workdir))
    events: list[dict[str, Any]] = []
    outcomes: list[Outcome] = []
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            replicas[0].start()
            await replicas[0].wait_healthy(session)
            replicas[1].start()
            await replicas[1].wait_healthy(session)
            keys = await create_keys(session, replicas[0], args.unlimited_keys, args.limited_keys)
            stop_at = time.monotonic() + args.duration
            events.append({"event": "load start", "at": time.time()})
            tasks = [asyncio.create_task(client_loop(session, replicas, keys, 100 + i, stop_at, outcomes))
                     for i in range(args.concurrency)]
            tasks.append(asyncio.create_task(rotate_faults(session, upstreams, args.fault_rate, stop_at, 5)))
            tasks.append(asyncio.create_task(chaos(session, args.duration, pg, redis_proxy, replicas, events,
                                                   args.blip_s)))
            await asyncio.gather(*tasks)
            events.append({"event": "load end", "at": time.time()})
            for up in upstreams:
                await up.configure(session, fault="none", fault_rate=0.0)
            await asyncio.sleep(6)  # hung upstream connections close (hang_s 4); writers flush
            served = [await up.stats(session) for up in upstreams]
        for replica in replicas:
            replica.stop()  # graceful: the writer drains before exit
        from benchmarks.soak_report import reconcile

        return reconcile(direct_db, f"redis://127.0.0.1:{args.redis_port}/{redis_db}", keys, outcomes, served,
                         events, args)
    finally:
        for replica in replicas:
            replica.stop()
        for up in upstreams:
            up.stop()
        pg.close()
        redis_proxy.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=300, help="seconds of load")
    ap.add_argument("--concurrency", type=int, default=12)
    ap.add_argument("--fault-rate", type=float, default=0.3)
    ap.add_argument("--blip-s", type=float, default=3.0, help="seconds each Redis / PostgreSQL blip lasts")
    ap.add_argument("--unlimited-keys", type=int, default=4)
    ap.add_argument("--limited-keys", type=int, default=4)
    ap.add_argument("--redis-port", type=int, default=6379)
    ap.add_argument("--redis-db", type=int, default=0)
    ap.add_argument("--sigkill-window-s", type=float, default=1.0,
                    help="answered generations the killed replica may lose: those answered this long before it")
    ap.add_argument("--out", help="write the report (JSON) here")
    ap.add_argument("--keep", action="store_true", help="keep the work directory and the database")
    args = ap.parse_args()

    import psycopg

    name = "tollway_soak_" + secrets.token_hex(4)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    direct_db = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    workdir = Path(tempfile.mkdtemp(prefix="tollway-soak-"))
    try:
        report = asyncio.run(run(args, workdir, direct_db))
    finally:
        if not args.keep:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report["workdir"] = str(workdir)
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text)
    from benchmarks.soak_report import summary

    print(summary(report))
    sys.exit(0 if report["verdict"]["ok"] else 1)


if __name__ == "__main__":
    main()
