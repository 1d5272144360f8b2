"""Instructions the gateway executes per relayed request, per API, counted by callgrind.

    .venv/bin/python benchmarks/relay_instructions.py [--requests 40] [--body shared|agent]

The CPU-time benchmarks (``agent_relay_bench.py``, ``relay_ab.py``) move by +-10 % between
runs on this shared two-core machine, which is as large as the differences between the APIs
that issue 12 asks about.  ``valgrind --tool=callgrind`` counts the instructions the gateway
executes instead: the same code on the same input gives the same count whatever else the
machine is doing, so a few percent is visible in a single run.  Instructions are not
seconds (cache misses, system calls and the kernel's share are not counted), so this
complements the CPU-time figures rather than replacing them.

One ``tollway serve`` runs under callgrind with instrumentation off; the upstreams
(``../shared/bench/upstream.py``, ``responses_upstream.py``) and the load (this process) run
natively.  For each API: a warm-up of ``--warmup`` requests, then instrumentation on for
``--requests`` requests at ``--conns`` connections, dumped and read back; the figure is the
collected instructions divided by the requests, on the event loop's thread (where the
request is handled: the same from round to round to ~0.3 %), without libc's copy and fill
functions (callgrind counts ``rep movsb`` once per byte, so a 200 KB copy, a few
microseconds, would weigh as much as a hundred thousand Python instructions), and on every
thread (the ledger's writer included, whose batches vary with timing).

* ``--body shared``: what ``../shared/bench/load.py`` sends (a system prompt and one 200 KB
  user message, 16 streamed completion tokens), for chat, Messages and Responses.
* ``--body agent``: ``agent_relay_bench.py``'s 100-message conversation (64 tokens).

``--chunk-delay-ms 10 --conns 1``: the upstreams send one chunk every 10 ms, so every read
holds one token, as a model streams (one connection: under callgrind the gateway is slow
enough that four paced streams already coalesce into fewer reads).

APIs: ``chat``; ``messages`` and ``responses`` translated to the OpenAI-format upstream;
``messages-passthrough`` to the Anthropic-format one; ``responses-passthrough`` to the
Responses-native one.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import agent_relay_bench as arb
import orjson

CALLGRIND_OUT = "callgrind.out"
# libc's string functions copy or fill with `rep movsb`/`rep stosb`, which callgrind counts
# once per byte: a 200 KB memcpy weighs 200,000 instructions but costs a few microseconds.
# The copies are the same for every API, so they dilute the ratios; they are reported apart.
STRING_FUNCTIONS = re.compile(r"__mem(?:cpy|move|set|pcpy)_|:(?:memcpy|memmove|memset|mempcpy)\b")


def string_instructions(dump: Path) -> int:
    """Instructions of the dump spent in libc's copy and fill functions (their own cost)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", str(dump)],
                         capture_output=True, text=True, check=True).stdout
    total = 0
    for line in out.splitlines():
        match = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)", line)
        if match and STRING_FUNCTIONS.search(match.group(2)):
            total += int(match.group(1).replace(",", ""))
    return total


def shared_bodies(prompt_bytes: int, tokens: int) -> dict[str, tuple[str, bytes]]:
    """load.py's request (``make_body``) for each API."""
    text = ("The quick brown fox jumps over the lazy dog. " * (prompt_bytes // 45 + 1))[:prompt_bytes]
    chat = {"model": "bench/echo", "max_tokens": tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": "You are a benchmark."}, {"role": "user", "content": text}]}
    messages = {"model": "bench/echo", "max_tokens": tokens, "system": "You are a benchmark.", "stream": True,
                "messages": [{"role": "user", "content": text}]}
    responses = {"model": "bench/echo", "max_output_tokens": tokens, "instructions": "You are a benchmark.",
                 "stream": True, "store": False, "input": text}
    return {
        "chat": ("/v1/chat/completions", orjson.dumps(chat)),
        "messages": ("/v1/messages", orjson.dumps(messages)),
        "messages-passthrough": ("/v1/messages", orjson.dumps({**messages, "model": "bench/claude"})),
        "responses": ("/v1/responses", orjson.dumps(responses)),
        "responses-passthrough": ("/v1/responses", orjson.dumps({**responses, "model": "bench/native"})),
    }


class CallgrindGateway(arb.Gateway):
    """``tollway serve`` under callgrind, instrumenting nothing until :meth:`collect`."""

    def __init__(self, workdir: Path, upstreams: tuple[str, str], keep: Path | None = None) -> None:
        self.valgrind_out = workdir / CALLGRIND_OUT
        self.keep = keep
        super().__init__(workdir, upstreams, binary=Path(sys.executable).with_name("tollway"))

    def command(self, serve: list[str]) -> list[str]:
        return ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no", "--separate-threads=yes",
                f"--callgrind-out-file={self.valgrind_out}", *serve]

    def control(self, *args: str) -> None:
        subprocess.run(["callgrind_control", *args, str(self.proc.pid)], check=True, capture_output=True)

    async def collect(self, path: str, body: bytes, requests: int, conns: int, label: str) -> tuple[int, int, int]:
        """Instructions executed while ``requests`` requests are answered: on the event loop's
        thread, the part of those in libc's copy/fill functions, and on every thread."""
        self.control("--zero")
        self.control("--instr=on")
        await arb.closed_loop(self, path, body, requests, conns)
        self.control("--instr=off")
        before = set(self.workdir.glob(CALLGRIND_OUT + "*"))
        self.control(f"--dump={label}")
        totals: dict[str, int] = {}
        settled, seen = 0, 0
        for _ in range(600):  # one file per thread, written one after another while we look
            dumped = set(self.workdir.glob(CALLGRIND_OUT + "*")) - before
            for out in dumped:
                match = re.search(r"^totals:\s+(\d+)", out.read_text(errors="replace"), re.M)
                if match and out.name not in totals:
                    totals[out.name] = int(match.group(1))
            # Done when every file has its totals and no new one appeared for a second.
            settled = settled + 1 if dumped and len(totals) == len(dumped) == seen else 0
            seen = len(dumped)
            if settled >= 5:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError("callgrind wrote no complete dump")
        # --separate-threads names the files ...-THREAD; thread 1 runs the event loop.
        (main_file,) = [name for name in totals if name.endswith("-01")]
        strings = string_instructions(self.workdir / main_file)
        for name in totals:
            if self.keep is not None:
                (self.workdir / name).rename(self.keep / f"{label}.{name}")
            else:
                (self.workdir / name).unlink()
        return totals[main_file], strings, sum(totals.values())


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--body", choices=("shared", "agent"), default="shared")
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--apis", default=",".join(arb.APIS))
    ap.add_argument("--keep", type=Path, help="keep callgrind's dumps here (callgrind_annotate reads them)")
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0,
                    help="pace the upstreams' chunks: one token per read, as a model streams "
                         "(use --conns 1, so that the gateway under callgrind keeps up)")
    a = ap.parse_args()
    apis = tuple(a.apis.split(","))
    if a.body == "shared":
        bodies = shared_bodies(200_000, 16)
        chunks = 16
    else:
        turns = arb.conversation(200_000, 100)
        bodies = {api: arb.body_for(api, turns) for api in apis}
        chunks = 64
    with tempfile.TemporaryDirectory(prefix="relay-instr-") as tmp:
        workdir = Path(tmp)
        upstreams, urls = arb.start_upstreams(workdir, chunks, a.chunk_delay_ms)
        try:
            gw = CallgrindGateway(workdir, urls, a.keep)
            try:
                await gw.ready(timeout=600)
                counts: dict[str, list[tuple[int, int, int]]] = {api: [] for api in apis}
                for api in apis:
                    await arb.closed_loop(gw, *bodies[api], a.warmup, a.conns)
                for r in range(a.rounds):
                    for api in apis if r % 2 == 0 else reversed(apis):
                        main, strings, every = await gw.collect(*bodies[api], a.requests, a.conns, f"{api}-{r}")
                        counts[api].append((main // a.requests, (main - strings) // a.requests,
                                            every // a.requests))
                        print(f"  round {r + 1} {api}: " + " / ".join(f"{c:,}" for c in counts[api][-1]),
                              file=sys.stderr)
            finally:
                gw.stop()
        finally:
            for upstream in upstreams:
                upstream.terminate()
                upstream.wait(10)
    paced = f", chunks {a.chunk_delay_ms:g} ms apart" if a.chunk_delay_ms else ""
    print(f"\n{a.body} body{paced}, {a.requests} requests x {a.rounds} rounds per API; instructions per request "
          "(callgrind), median of the rounds\n")
    print("| API | event loop's thread | x chat | same, without libc copies | x chat | every thread | x chat |")
    print("|---|---|---|---|---|---|---|")
    med = {api: [statistics.median(c[i] for c in counts[api]) for i in range(3)] for api in apis}
    chat = med.get("chat")
    for api in apis:
        cells = []
        for i, value in enumerate(med[api]):
            cells += [f"{value:,.0f}", f"{value / chat[i]:.3f}" if chat else "-"]
        print(f"| {api} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    asyncio.run(main())
