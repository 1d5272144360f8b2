"""What a long agent conversation costs to relay, per API: gateway CPU per request and
peak RSS, for ``/v1/chat/completions``, ``/v1/messages`` (translated to an OpenAI-format
upstream, and passed through to an Anthropic-format one) and ``/v1/responses`` (translated to
chat, and passed through to a Responses-native upstream, ``responses-passthrough``).

    .venv/bin/python benchmarks/agent_relay_bench.py [--prompt-bytes 200000] [--requests 200]

Starts ../shared/bench/upstream.py (instant answers, ``--chunks`` stream chunks),
benchmarks/responses_upstream.py (the same for ``POST /v1/responses``) and ``tollway serve``
with one worker, both on loopback; the load comes from this process.  Every request is
a stream whose prompt is an agent-like conversation: ``--turns`` alternating user/assistant
messages filling ``--prompt-bytes``.

* CPU: closed loop at ``--conns`` connections, ``--requests`` per API per round; the
  gateway's utime+stime (from /proc) divided by the requests.  The APIs alternate within
  each round (order reversed every other round) and the median of ``--rounds`` is
  reported, so noise from other tenants hits every API alike: compare the ratios.
* Memory: for each API a fresh gateway, warmed up, then a closed loop at ``--burst``
  connections (8 requests each); the peak RSS sampled every 20 ms.
* ``--shared-load SECONDS``: instead, the shared harness's load generator
  (``../shared/bench/load.py``, closed loop, streams, one ``--prompt-bytes`` user message)
  with ``--api openai`` (chat) and ``--api anthropic`` (``/v1/messages`` passed through to
  an Anthropic-format upstream, and translated to the OpenAI-format one, which is how
  ../shared/bench/gateways/tollway.sh serves it) against one gateway, alternating for
  ``--rounds``: gateway CPU per request, requests per second, TTFT p50.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "bench"
TOLLWAY = Path(sys.executable).with_name("tollway")
APIS = ("chat", "messages", "messages-passthrough", "responses", "responses-passthrough")
CLOCK = os.sysconf("SC_CLK_TCK")


def conversation(prompt_bytes: int, turns: int) -> list[tuple[str, str]]:
    size = max(prompt_bytes // turns, 1)
    text = ("The quick brown fox jumps over the lazy dog. " * (size // 45 + 1))[:size]
    return [("user" if i % 2 == 0 else "assistant", f"{i}: {text}") for i in range(turns - 1)] + \
        [("user", "Go on.")]


def body_for(api: str, turns: list[tuple[str, str]]) -> tuple[str, bytes]:
    if api == "chat":
        return "/v1/chat/completions", orjson.dumps({
            "model": "bench/echo", "stream": True, "max_tokens": 64, "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": "Be terse."},
                         *({"role": r, "content": t} for r, t in turns)]})
    if api.startswith("messages"):
        model = "bench/claude" if api == "messages-passthrough" else "bench/echo"
        return "/v1/messages", orjson.dumps({
            "model": model, "stream": True, "max_tokens": 64, "system": "Be terse.",
            "messages": [{"role": r, "content": [{"type": "text", "text": t}]} for r, t in turns]})
    model = "bench/native" if api == "responses-passthrough" else "bench/echo"
    return "/v1/responses", orjson.dumps({
        "model": model, "stream": True, "max_output_tokens": 64, "store": False,
        "instructions": "Be terse.",
        "input": [{"type": "message", "role": r,
                   "content": [{"type": "input_text" if r == "user" else "output_text", "text": t}]}
                  for r, t in turns]})


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """The process's CPU seconds (user + system), or one thread's (``tid``)."""
    stat = Path(f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


CpuClock = Callable[[int, int | None], float]


class Gateway:
    def __init__(self, workdir: Path, upstreams: tuple[str, str], binary: Path = TOLLWAY) -> None:
        self.workdir = workdir
        upstream, native = upstreams  # chat + Anthropic formats; Responses-native
        cfg = workdir / "tollway.yaml"
        cfg.write_text(f"""
database: sqlite:///{workdir}/tollway.db
server: {{max_body_bytes: 67108864}}
providers:
  - {{name: bench, kind: openai, base_url: "{upstream}/v1", api_key: sk-bench}}
  - {{name: bench-anthropic, kind: anthropic, base_url: "{upstream}", api_key: sk-bench}}
  - {{name: bench-native, kind: openai, responses: native, base_url: "{native}/v1", api_key: sk-bench}}
models:
  - id: bench/echo
    endpoints: [{{provider: bench, model: echo, pricing: {{prompt: 1.0, completion: 2.0}}}}]
  - id: bench/claude
    endpoints: [{{provider: bench-anthropic, model: echo, pricing: {{prompt: 1.0, completion: 2.0}}}}]
  - id: bench/native
    endpoints: [{{provider: bench-native, model: echo, pricing: {{prompt: 1.0, completion: 2.0}}}}]
""")
        self.cfg = cfg
        out = subprocess.run([str(binary), "keys", "create", "--config", str(cfg), "--name", "bench"],
                             capture_output=True, text=True, check=True)
        self.key = out.stdout.strip().splitlines()[-1].strip()
        self.port = _free_port()
        with open(workdir / "server.log", "wb") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.command([str(binary), "serve", "--config", str(cfg),
                                                       "--host", "127.0.0.1", "--port", str(self.port),
                                                       "--workers", "1"]),
                                         stdout=subprocess.DEVNULL, stderr=log)
        self.url = f"http://127.0.0.1:{self.port}"

    def command(self, serve: list[str]) -> list[str]:
        """The command line that runs ``serve`` (a subclass may wrap it, e.g. in valgrind)."""
        return serve

    async def ready(self, timeout: float = 30.0) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(int(timeout / 0.05)):
                try:
                    async with http.get(self.url + "/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError("gateway did not start; see " + str(self.workdir / "server.log"))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def one(http: aiohttp.ClientSession, gw: Gateway, path: str, body: bytes) -> None:
    headers = {"Authorization": f"Bearer {gw.key}", "x-api-key": gw.key, "Content-Type": "application/json"}
    async with http.post(gw.url + path, data=body, headers=headers) as resp:
        data = await resp.read()
        if resp.status != 200 or not (b"[DONE]" in data or b"message_stop" in data or b"response.completed" in data):
            raise RuntimeError(f"{path}: {resp.status} {data[-300:]!r}")


async def closed_loop(gw: Gateway, path: str, body: bytes, requests: int, conns: int) -> None:
    queue = iter(range(requests))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conns)) as http:

        async def worker() -> None:
            for _ in queue:
                await one(http, gw, path, body)

        await asyncio.gather(*(worker() for _ in range(conns)))


async def cpu_round(gw: Gateway, bodies: dict[str, tuple[str, bytes]], order: tuple[str, ...],
                    requests: int, conns: int,
                    clock: CpuClock = cpu_seconds) -> tuple[dict[str, float], dict[str, float]]:
    """CPU ms per request by API: the whole process, and its event-loop thread alone (the
    rest is the ledger's threads); ``clock`` reads a process's or a thread's CPU seconds."""
    out, loop = {}, {}
    pid = gw.proc.pid
    for api in order:
        path, body = bodies[api]
        before, before_loop = clock(pid, None), clock(pid, pid)
        await closed_loop(gw, path, body, requests, conns)
        out[api] = (clock(pid, None) - before) / requests * 1000
        loop[api] = (clock(pid, pid) - before_loop) / requests * 1000
    return out, loop


async def peak_rss(workdir: Path, upstream: tuple[str, str], path: str, body: bytes, burst: int) -> tuple[float, float]:
    gw = Gateway(workdir, upstream)
    try:
        await gw.ready()
        await closed_loop(gw, path, body, 16, 4)  # warm-up: imports, pools, first allocations
        idle = rss_mb(gw.proc.pid)
        peak = idle
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_mb(gw.proc.pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        await closed_loop(gw, path, body, burst * 8, burst)  # each connection sends 8, back to back
        done.set()
        await sampler
        return idle, peak
    finally:
        gw.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt-bytes", type=int, default=200_000)
    ap.add_argument("--turns", type=int, default=100)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--burst", type=int, default=64)
    ap.add_argument("--apis", default=",".join(APIS))
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--chunks", type=int, default=64, help="content chunks per streamed answer")
    ap.add_argument("--profile", help="py-spy (pip install py-spy) the gateway during the CPU rounds; "
                    "raw collapsed stacks to this file")
    ap.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second")
    ap.add_argument("--shared-load", type=float, metavar="SECONDS",
                    help="drive ../shared/bench/load.py (--api openai vs anthropic) for this long per run")
    a = ap.parse_args()
    apis = tuple(a.apis.split(","))
    turns = conversation(a.prompt_bytes, a.turns)
    bodies = {api: body_for(api, turns) for api in apis}
    with tempfile.TemporaryDirectory(prefix="tollway-agent-bench-") as tmp:
        upstreams, upstream_url = start_upstreams(Path(tmp), a.chunks)
        try:
            if a.shared_load:
                await shared_load_phase(a, Path(tmp), upstream_url)
                return
            print(f"prompt {len(bodies[apis[0]][1]):,} bytes in {a.turns} messages; load 1 {os.getloadavg()}")
            if not a.skip_cpu:
                await cpu_phase(a, apis, bodies, Path(tmp), upstream_url)
            if a.skip_memory:
                return
            print(f"\n| API | RSS after warm-up MB | peak RSS at {a.burst} concurrent MB |\n|---|---|---|")
            for api in apis:
                workdir = Path(tmp) / f"mem-{api}"
                workdir.mkdir()
                path, body = bodies[api]
                idle, peak = await peak_rss(workdir, upstream_url, path, body, a.burst)
                print(f"| {api} | {idle:.0f} | {peak:.0f} |")
            print(f"\nload 1 at end {os.getloadavg()}")
        finally:
            for upstream in upstreams:
                upstream.terminate()
                upstream.wait(10)


def start_upstreams(workdir: Path, chunks: int,
                    chunk_delay_ms: float = 0.0) -> tuple[list[subprocess.Popen[bytes]], tuple[str, str]]:
    """../shared/bench/upstream.py (chat and Anthropic formats) and responses_upstream.py
    (Responses-native), answering ``chunks`` tokens per stream: the processes and their URLs.
    ``chunk_delay_ms`` paces both upstreams' events (one token per network read, as a model
    streams)."""
    port_files = (workdir / "upstream.port", workdir / "native.port")
    servers = (BENCH / "upstream.py", ROOT / "benchmarks" / "responses_upstream.py")
    upstreams = [subprocess.Popen([sys.executable, str(server), "--port", "0", "--port-file", str(port_file),
                                   "--stream-chunks", str(chunks), "--chunk-delay-ms", str(chunk_delay_ms)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for server, port_file in zip(servers, port_files, strict=True)]
    for _ in range(200):
        if all(f.exists() and f.read_text().strip() for f in port_files):
            break
        time.sleep(0.05)
    plain, native = (f"http://127.0.0.1:{f.read_text().strip()}" for f in port_files)
    return upstreams, (plain, native)


async def cpu_phase(a: argparse.Namespace, apis: tuple[str, ...], bodies: dict[str, tuple[str, bytes]],
                    tmp: Path, upstream_url: tuple[str, str]) -> None:
    workdir = tmp / "cpu"
    workdir.mkdir()
    gw = Gateway(workdir, upstream_url)
    try:
        await gw.ready()
        await cpu_round(gw, bodies, apis, 20, a.conns)  # warm-up
        spy = subprocess.Popen(["py-spy", "record", "-p", str(gw.proc.pid), "-f", "raw", "-o", a.profile,
                                "-r", str(a.profile_rate)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) \
            if a.profile else None
        rounds, loops = [], []
        for r in range(a.rounds):
            order = apis if r % 2 == 0 else tuple(reversed(apis))
            total, loop = await cpu_round(gw, bodies, order, a.requests, a.conns)
            rounds.append(total)
            loops.append(loop)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f} ms ({loop[k]:.2f} loop)" for k, v in total.items()))
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
    finally:
        gw.stop()
    base = statistics.median(r["chat"] for r in rounds) if "chat" in apis else None
    base_loop = statistics.median(r["chat"] for r in loops) if "chat" in apis else None
    print("\n| API | gateway CPU ms/request (median) | x chat | event-loop thread ms/request | x chat |"
          "\n|---|---|---|---|---|")
    for api in apis:
        med, med_loop = statistics.median(r[api] for r in rounds), statistics.median(r[api] for r in loops)
        ratios = (f"{med / base:.2f} | {med_loop:.2f} | {med_loop / base_loop:.2f}" if base and base_loop
                  else f" | {med_loop:.2f} | ")
        print(f"| {api} | {med:.2f} | {ratios} |")


def shared_load(gw: Gateway, api: str, seconds: float, a: argparse.Namespace) -> dict[str, float]:
    """One run of the shared load generator; the gateway's CPU over it, per answered request.
    ``anthropic`` names a model served in Anthropic's format (a pass-through);
    ``anthropic-translated`` one served in OpenAI's, as ../shared/bench/gateways/tollway.sh
    configures ``bench/echo`` (the Messages request translated to chat and back)."""
    model = "bench/claude" if api == "anthropic" else "bench/echo"
    api = api.removesuffix("-translated")
    before = cpu_seconds(gw.proc.pid)
    out = subprocess.run([sys.executable, str(BENCH / "load.py"), "--url", gw.url, "--key", gw.key, "--api", api,
                          "--model", model, "--mode", "closed", "-c", str(a.conns), "-d", str(seconds), "--stream",
                          "--max-tokens", str(a.chunks), "--prompt-bytes", str(a.prompt_bytes)],
                         capture_output=True, text=True, check=True)
    cpu = cpu_seconds(gw.proc.pid) - before
    doc = orjson.loads(out.stdout)
    if doc["errors"]:
        raise RuntimeError(f"load.py --api {api}: errors {doc['errors']}")
    return {"cpu_ms": cpu / doc["ok"] * 1000, "rps": doc["rps"], "ttft_p50": doc["ttft_ms"]["p50"]}


async def shared_load_phase(a: argparse.Namespace, tmp: Path, upstream_url: tuple[str, str]) -> None:
    workdir = tmp / "shared"
    workdir.mkdir()
    gw = Gateway(workdir, upstream_url)
    apis = ("openai", "anthropic", "anthropic-translated")
    try:
        await gw.ready()
        print(f"../shared/bench/load.py: {a.prompt_bytes:,}-byte prompts, {a.conns} connections, "
              f"{a.shared_load:g} s per run; load 1 {os.getloadavg()}")
        for api in apis:
            await asyncio.to_thread(shared_load, gw, api, 2, a)  # warm-up
        rounds = []
        for r in range(a.rounds):
            runs = {api: await asyncio.to_thread(shared_load, gw, api, a.shared_load, a)
                    for api in (apis if r % 2 == 0 else apis[::-1])}
            rounds.append(runs)
            print(f"round {r + 1}: " + ", ".join(f"{api} {v['cpu_ms']:.2f} ms, {v['rps']:.0f} req/s"
                                                 for api, v in runs.items()))
    finally:
        gw.stop()
    names = {"openai": "chat (`--api openai`)", "anthropic": "messages pass-through (`--api anthropic`)",
             "anthropic-translated": "messages translated to chat (`--api anthropic`, tollway.sh's model)"}
    base = statistics.median(r["openai"]["cpu_ms"] for r in rounds)
    print("\n| API | gateway CPU ms/request (median) | x chat | req/s | TTFT p50 ms |\n|---|---|---|---|---|")
    for api in apis:
        cpu = statistics.median(r[api]["cpu_ms"] for r in rounds)
        print(f"| {names[api]} | {cpu:.2f} | {cpu / base:.2f} | "
              f"{statistics.median(r[api]['rps'] for r in rounds):.0f} | "
              f"{statistics.median(r[api]['ttft_p50'] for r in rounds):.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
