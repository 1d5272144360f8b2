"""``tollway demo``: the fleet, the gateway and the workload, in one event loop.

Order of things: simulated providers start on ephemeral loopback ports (and, with the
``local`` extra, a llama.cpp server); the demo writes ``DIR/tollway.yaml`` pointing at them
and at ``DIR/ledger.db``; the real gateway is served by uvicorn on loopback with a
simulated clock; the workload drives it week by week over HTTP; the reports are read
back from the ledger.

The simulated clock is the gateway's only concession to the demo
(``Gateway(clock=...)``): before sending each request the workload sets the clock to
that request's simulated time, and every week ends with a barrier (all its requests
answered) so no record lands in the wrong week.  Requests in flight together may swap
timestamps within a week, which no weekly report can see.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import tempfile
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tollway.demo.fleet import Fleet
from tollway.demo.local import LocalModel, start_local_model
from tollway.demo.setup import LOCAL_MODEL_ID, SIM_PROVIDERS, config_document, local_entries, write_config
from tollway.demo.workload import PlannedRequest, Week, marker, plan_weeks
from tollway.ledger.schema import utcnow

CONCURRENCY = 32
LOCAL_PROMPTS = (
    "In one sentence, what does an API gateway do?",
    "Name three things a token ledger should record.",
    "Why would a team route requests to several model providers?",
    "Explain prompt caching in one short paragraph.",
    "Give a two-line haiku about latency.",
)


class SimClock:
    """A settable clock: the gateway's timestamps during the workload, real time after."""

    def __init__(self) -> None:
        self._now: datetime | None = None

    def set(self, when: datetime | None) -> None:
        self._now = when

    def __call__(self) -> datetime:
        return self._now if self._now is not None else utcnow()


@dataclass(slots=True)
class Options:
    data_dir: Path | None = None
    scale: float = 1.0
    seed: int = 7
    weeks: int | None = None
    local: bool = True  # use the local model when the extra is installed
    port: int = 0
    concurrency: int = CONCURRENCY


@dataclass(slots=True)
class Progress:
    """Running totals from the gateway's responses, with the definitions every line uses.

    ``requests`` counts every request sent (the workload's and the local model's);
    ``answered`` those that got a 200 (the ledger's successful generations); ``failed``
    the rest, refused by every provider they were routed to.  ``tokens`` and ``cost_usd``
    are the metered prompt + completion tokens and cost of the answered ones.
    """

    week: str = ""
    requests: int = 0
    failed: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    local_requests: int = 0  # answered by the local model

    @property
    def answered(self) -> int:
        return self.requests - self.failed


@dataclass(slots=True)
class DemoRun:
    """Everything a finished workload leaves behind, for the reports and the tests."""

    data_dir: Path
    config_path: Path
    database: str
    gateway_url: str
    api_key: str
    weeks: list[Week]
    progress: Progress
    local: LocalModel | None
    local_note: str | None
    fleet: Fleet
    available_kinds: set[str]
    skipped_kinds: set[str] = field(default_factory=set)


class PortTaken(Exception):
    """The gateway's port is in use; the command says how to pick another."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is in use")
        self.port = port


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortTaken(port) from None
        raise
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class DemoStack:
    """Starts and stops everything; use as ``async with DemoStack(options) as stack``."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.clock = SimClock()
        self._stack = AsyncExitStack()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.server: Any = None
        self.gateway: Any = None

    async def __aenter__(self) -> DemoRun:
        try:
            return await self._start()
        except BaseException:
            await self._stack.aclose()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def _start(self) -> DemoRun:
        import uvicorn

        from tollway.adapters import adapter_registry
        from tollway.app import build_app
        from tollway.config import load_settings
        from tollway.gateway import Gateway
        from tollway.ledger.db import create_db_engine, migrate
        from tollway.ledger.keys import create_key

        if self.options.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tollway-demo-")
            data_dir = Path(self._tmp.name)
        else:
            data_dir = self.options.data_dir.resolve()
            data_dir.mkdir(parents=True, exist_ok=True)
        fleet = Fleet(list(SIM_PROVIDERS), seed=self.options.seed)
        await fleet.start()
        self._stack.push_async_callback(fleet.stop)
        local: LocalModel | None = None
        note: str | None = "local model disabled (--no-local)"
        if self.options.local:
            local, note = await start_local_model()
            if local is not None:
                self._stack.push_async_callback(local.stop)
        available = set(adapter_registry())
        skipped = {p.kind for p in SIM_PROVIDERS} - available
        database = f"sqlite:///{data_dir / 'ledger.db'}"
        doc = config_document(fleet, database, available,
                              local_entries(local.base_url, local.model_name) if local else None)
        config_path = data_dir / "tollway.yaml"
        write_config(config_path, doc)
        settings = load_settings(config_path)
        engine = create_db_engine(settings.database)
        migrate(engine)
        with engine.begin() as conn:
            _, api_key = create_key(conn, name="demo", label="tollway demo workload")
        engine.dispose()
        # Rollups are what the reports read; the demo's gateway keeps them in the writer's
        # transaction like any deployment that runs analytics.
        self.gateway = Gateway(settings, clock=self.clock)
        app = build_app(settings, self.gateway)
        sock = _bind(self.options.port)
        config = uvicorn.Config(app, loop="asyncio", lifespan="on", log_level="warning", access_log=False,
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # the demo owns Ctrl-C
        serving = asyncio.create_task(self.server.serve(sockets=[sock]))
        self._stack.push_async_callback(self._stop_server, serving)
        while not self.server.started:
            if serving.done():
                serving.result()
                raise RuntimeError("the gateway stopped while starting")
            await asyncio.sleep(0.01)
        port = sock.getsockname()[1]
        return DemoRun(data_dir=data_dir, config_path=config_path, database=database,
                       gateway_url=f"http://127.0.0.1:{port}", api_key=api_key, weeks=[],
                       progress=Progress(), local=local, local_note=note, fleet=fleet,
                       available_kinds=available, skipped_kinds=skipped)

    async def _stop_server(self, serving: asyncio.Task[None]) -> None:
        self.server.should_exit = True
        await serving  # lifespan shutdown drains the ledger writer

    def flush(self) -> None:
        """Wait until the ledger holds every answered request."""
        if self.gateway is not None and not self.gateway.writer.flush(60):
            raise RuntimeError("the ledger writer did not drain within 60 s")


async def drive(run: DemoRun, clock: SimClock, options: Options,
                on_progress: Callable[[Progress, int, int], None] | None = None) -> None:
    """Send every week's requests through the gateway, week after week."""
    weeks = plan_weeks(scale=options.scale, seed=options.seed, weeks=options.weeks)
    run.weeks = weeks
    local_per_week = local_requests_per_week(options.scale) if run.local is not None else 0
    total = sum(len(w.requests) + local_per_week for w in weeks)
    gate = asyncio.Semaphore(options.concurrency)
    local_gate = asyncio.Semaphore(1)  # llama.cpp serves one request at a time
    headers = {"Authorization": f"Bearer {run.api_key}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=options.concurrency + 4)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        for week in weeks:
            run.progress.week = week.start.isoformat()

            def report() -> None:
                if on_progress:
                    on_progress(run.progress, run.progress.requests, total)

            async def one(request: PlannedRequest) -> None:
                async with gate:
                    clock.set(request.at)
                    await _send(session, run, request)
                report()

            jobs = [one(r) for r in week.requests]
            if run.local is not None:
                jobs.extend(_local_jobs(session, run, clock, week, local_gate, local_per_week, report))
            await asyncio.gather(*jobs)
        clock.set(None)


def local_requests_per_week(scale: float) -> int:
    """How many prompts the local model answers each simulated week."""
    return max(1, round(2 * scale))


def _local_jobs(session: aiohttp.ClientSession, run: DemoRun, clock: SimClock, week: Week,
                gate: asyncio.Semaphore, count: int, report: Callable[[], None]) -> list[Any]:
    jobs = []
    for i in range(count):
        prompt = LOCAL_PROMPTS[(week.index * count + i) % len(LOCAL_PROMPTS)]
        at = week.requests[min(i, len(week.requests) - 1)].at if week.requests else None

        async def job(prompt: str = prompt, at: datetime | None = at) -> None:
            async with gate:
                clock.set(at)
                body = {"model": LOCAL_MODEL_ID, "max_tokens": 40, "temperature": 0.7,
                        "messages": [{"role": "user", "content": prompt}]}
                extra = {"HTTP-Referer": "https://github.com/tollway/demo", "X-Title": "Local assistant"}
                ok, tokens, cost = await _post(session, run, body, extra)
                run.progress.local_requests += int(ok)
                _count(run, ok, tokens, cost)
            report()

        jobs.append(job())
    return jobs


async def _send(session: aiohttp.ClientSession, run: DemoRun, request: PlannedRequest) -> None:
    body: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.completion_tokens,
        "messages": [
            {"role": "system", "content": f"You are a {request.kind} assistant."},
            {"role": "user", "content": f"{marker(request)} Please continue the task."},
        ],
    }
    if request.stream:
        body["stream"] = True
    extra = {"HTTP-Referer": request.app, "X-Title": request.app_title}
    if request.session_id:
        extra["X-Session-Id"] = request.session_id
    ok, tokens, cost = await _post(session, run, body, extra)
    _count(run, ok, tokens, cost)


def _count(run: DemoRun, ok: bool, tokens: int, cost: float) -> None:
    progress = run.progress
    progress.requests += 1
    progress.failed += int(not ok)
    progress.tokens += tokens
    progress.cost_usd += cost


async def _post(session: aiohttp.ClientSession, run: DemoRun, body: dict[str, Any],
                headers: dict[str, str]) -> tuple[bool, int, float]:
    """One request; returns (answered, tokens, cost) as the gateway reported them."""
    url = run.gateway_url + "/v1/chat/completions"
    async with session.post(url, data=orjson.dumps(body), headers=headers) as resp:
        raw = await resp.read()
    if resp.status != 200:
        return False, 0, 0.0
    usage: dict[str, Any] | None = None
    if body.get("stream"):
        for line in raw.split(b"\n"):
            if line.startswith(b"data: {") and b'"usage"' in line:
                usage = orjson.loads(line[6:]).get("usage") or usage
    else:
        usage = orjson.loads(raw).get("usage")
    if not usage:
        return True, 0, 0.0
    return True, int(usage.get("total_tokens") or 0), float(usage.get("cost") or 0.0)
