"""Two tollway checkouts side by side: gateway CPU per relayed 200 KB request, per API.

    .venv/bin/python benchmarks/relay_ab.py BEFORE_CHECKOUT AFTER_CHECKOUT [--body agent|shared]

Each checkout needs its own ``.venv`` with tollway installed (``python -m venv .venv &&
.venv/bin/pip install -e .``).  One gateway per checkout, each pinned to CPU 0; the
upstreams and the load on CPU 1.  The figure is the gateway's CPU time per answered request
(``/proc/PID/task/*/schedstat``: nanoseconds, every thread, the ledger's included).

* ``--body agent``: the 100-message conversation of ``agent_relay_bench.py`` through all
  five APIs (its load, in this process).
* ``--body shared``: ``../shared/bench/load.py`` (one 200 KB user message, 8 connections)
  with ``--api openai`` and ``--api anthropic``, the latter both translated (``bench/echo``,
  an OpenAI-format upstream, as ``../shared/bench/gateways/tollway.sh`` configures it) and
  passed through (``bench/claude``).

Every (checkout, API) pair runs once per round; the order rotates by one place each round
and reverses every other one, so each pair runs in every position equally often.  (A fixed
order, even one reversed every other round, measured the pairs in the middle consistently
higher on this machine: they always follow a switch of gateway or API, the pairs at the ends
half the time follow themselves.)  Medians over the rounds; ratios are taken within a gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import agent_relay_bench as arb

SHARED_APIS = ("openai", "anthropic-translated", "anthropic")


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """CPU seconds of the process (every thread) or of one thread, from schedstat (ns)."""
    tasks = [str(tid)] if tid is not None else os.listdir(f"/proc/{pid}/task")
    total = 0
    for task in tasks:
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    return total / 1e9


def rotations(pairs: list[tuple[str, str]], rounds: int) -> list[list[tuple[str, str]]]:
    out = []
    for r in range(rounds):
        k = r % len(pairs)
        order = pairs[k:] + pairs[:k]
        out.append(order if r % 2 == 0 else order[::-1])
    return out


def shared_load(gw: arb.Gateway, api: str, seconds: float) -> float:
    model = "bench/claude" if api == "anthropic" else "bench/echo"
    before = cpu_seconds(gw.proc.pid)
    out = subprocess.run(["taskset", "-c", "1", sys.executable, str(arb.BENCH / "load.py"), "--url", gw.url,
                          "--key", gw.key, "--api", api.removesuffix("-translated"), "--model", model,
                          "--mode", "closed", "-c", "8", "-d", str(seconds), "--stream", "--max-tokens", "64",
                          "--prompt-bytes", "200000"], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    if doc["errors"]:
        raise RuntimeError(f"load.py --api {api}: errors {doc['errors']}")
    answered = int(doc["ok"])
    return (cpu_seconds(gw.proc.pid) - before) / answered * 1000


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkouts", nargs=2, type=Path, help="before and after")
    ap.add_argument("--body", choices=("agent", "shared"), default="agent")
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--requests", type=int, default=600, help="agent body: requests per API per round")
    ap.add_argument("--seconds", type=float, default=5.0, help="shared body: seconds per API per round")
    a = ap.parse_args()
    os.sched_setaffinity(0, {1})
    apis = arb.APIS if a.body == "agent" else SHARED_APIS
    bodies = {api: arb.body_for(api, arb.conversation(200_000, 100)) for api in arb.APIS}
    with tempfile.TemporaryDirectory(prefix="tollway-relay-ab-") as tmp:
        upstreams, urls = arb.start_upstreams(Path(tmp), 64)
        gateways: dict[str, arb.Gateway] = {}
        try:
            for i, checkout in enumerate(a.checkouts):
                workdir = Path(tmp) / f"gateway-{i}"
                workdir.mkdir()
                name = f"{i + 1}:{checkout.resolve().name}"
                gateways[name] = arb.Gateway(workdir, urls,
                                             checkout.resolve() / ".venv" / "bin" / "tollway")
                os.sched_setaffinity(gateways[name].proc.pid, {0})
            for gw in gateways.values():
                await gw.ready()
                await arb.cpu_round(gw, bodies, arb.APIS, 30, 8, cpu_seconds)  # warm-up
            samples: dict[tuple[str, str], list[float]] = defaultdict(list)
            pairs = [(name, api) for api in apis for name in gateways]
            print(f"{a.body} body, {a.rounds} rounds; load 1 {os.getloadavg()[0]:.2f}", flush=True)
            for order in rotations(pairs, a.rounds):
                for name, api in order:
                    gw = gateways[name]
                    if a.body == "agent":
                        out, _ = await arb.cpu_round(gw, bodies, (api,), a.requests, 8, cpu_seconds)
                        samples[(name, api)].append(out[api])
                    else:
                        samples[(name, api)].append(shared_load(gw, api, a.seconds))
            print(f"load 1 at end {os.getloadavg()[0]:.2f}\n")
            print("| API | " + " | ".join(f"{n} ms | {n} x chat" for n in gateways) + " | after / before |")
            print("|---|" + "---|---|" * len(gateways) + "---|")
            medians = {key: statistics.median(v) for key, v in samples.items()}
            first, last = list(gateways)
            for api in apis:
                cells = [f"{medians[(n, api)]:.3f} | {medians[(n, api)] / medians[(n, apis[0])]:.2f}" for n in gateways]
                print(f"| {api} | " + " | ".join(cells) + f" | {medians[(last, api)] / medians[(first, api)]:.3f} |")
        finally:
            for gw in gateways.values():
                gw.stop()
            for upstream in upstreams:
                upstream.terminate()
                upstream.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
