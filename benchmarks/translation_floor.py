"""What reading a request costs per API before it is relayed, and what no translator can avoid.

    .venv/bin/python benchmarks/translation_floor.py [--body agent|shared] [--mypyc]

Issue 12 asks that a request through ``/v1/messages`` or ``/v1/responses``, translated to an
OpenAI-format upstream, cost no more gateway CPU than the same request through
``/v1/chat/completions``.  This times, in this process, the request-side work each API does
on the same conversation (best of ``--rounds`` rounds, the APIs interleaved in each round):

* ``chat``: decode the body, check it (``validate_chat_body``), encode the upstream body;
* ``messages``: decode, check and translate (``MessagesRequest.parse(to_chat=True)``), encode;
* ``responses``: decode, check and translate (``ResponsesRequest.parse(translate=True)``), encode.

and, for the Messages body, two floors that a translator which never built Python objects
for the conversation would still pay: msgspec splitting it into raw messages
(``list[msgspec.Raw]``: a JSON scan of 200 KB), and msgspec decoding it against a strict
schema of plain text messages (what proving a conversation needs no translation costs).

``--mypyc`` also compiles a copy of ``tollway/messages.py`` and ``tollway/responses/request.py``
with mypyc (from the test extras; about a minute) and times the same work with the compiled
translation, in a second process: what a compiled translator written in the same Python
would give.

The stream side (the event writers) is not timed here: ``agent_relay_bench.py`` and
``relay_instructions.py`` measure whole requests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[1]


# A conversation of plain text messages, strictly (no other field, no other block): what a
# Messages request whose conversation needs no translation would be proved against.
class Text(msgspec.Struct, tag_field="type", tag="text", forbid_unknown_fields=True):
    text: str

class User(msgspec.Struct, tag_field="role", tag="user", forbid_unknown_fields=True):
    content: str | list[Text]

class Assistant(msgspec.Struct, tag_field="role", tag="assistant", forbid_unknown_fields=True):
    content: str | list[Text]

class Plain(msgspec.Struct):
    messages: list[User | Assistant]

class Split(msgspec.Struct):
    messages: list[msgspec.Raw]


def bodies(kind: str) -> dict[str, bytes]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import agent_relay_bench as arb
    import relay_instructions as ri

    if kind == "shared":
        shared = ri.shared_bodies(200_000, 16)
        return {api: shared[api][1] for api in ("chat", "messages", "responses")}
    turns = arb.conversation(200_000, 100)
    return {api: arb.body_for(api, turns)[1] for api in ("chat", "messages", "responses")}


def workloads(raw: dict[str, bytes]) -> dict[str, Callable[[], Any]]:
    import orjson

    from tollway.gateway import validate_chat_body
    from tollway.json_body import dumps_tight
    from tollway.messages import MessagesRequest
    from tollway.responses.request import ResponsesRequest

    def chat() -> bytes:
        body = orjson.loads(raw["chat"])
        validate_chat_body(body)
        return dumps_tight(body)

    def messages() -> bytes:
        return dumps_tight(MessagesRequest.parse(orjson.loads(raw["messages"]), to_chat=True).openai)

    def responses() -> bytes:
        return dumps_tight(ResponsesRequest.parse(orjson.loads(raw["responses"]), translate=True).chat)

    plain, split = msgspec.json.Decoder(Plain), msgspec.json.Decoder(Split)
    return {
        "chat": chat, "messages": messages, "responses": responses,
        "messages: decode only": lambda: orjson.loads(raw["messages"]),
        "chat: decode only": lambda: orjson.loads(raw["chat"]),
        "floor: msgspec split into raw messages": lambda: split.decode(raw["messages"]),
        "floor: msgspec strict plain-text schema": lambda: plain.decode(raw["messages"]),
    }


def measure(kind: str, rounds: int, repeat: int) -> dict[str, float]:
    """Best microseconds per call of each workload."""
    work = workloads(bodies(kind))
    best = dict.fromkeys(work, float("inf"))
    for _ in range(rounds):
        for name, fn in work.items():
            start = time.perf_counter()
            for _ in range(repeat):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / repeat * 1e6)
    return best


def compiled_copy(tmp: Path) -> Path:
    """A copy of the package with the two translation modules compiled by mypyc."""
    src = tmp / "src"
    shutil.copytree(ROOT / "src" / "tollway", src / "tollway")
    mypyc = str(Path(sys.executable).with_name("mypyc"))
    subprocess.run([mypyc, "tollway/messages.py", "tollway/responses/request.py"], cwd=src, check=True,
                   capture_output=True)
    return src


def table(results: dict[str, dict[str, float]]) -> str:
    columns = list(results)
    lines = ["| work | " + " | ".join(f"{c} us | x chat" for c in columns) + " |",
             "|---|" + "---|---|" * len(columns)]
    for name in results[columns[0]]:
        cells = []
        for column in columns:
            value, chat = results[column][name], results[column]["chat"]
            cells.append(f"{value:,.1f} | {value / chat:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--body", choices=("agent", "shared"), default="agent")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=40)
    ap.add_argument("--mypyc", action="store_true", help="also time a mypyc-compiled translation")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the compiled run's output
    a = ap.parse_args()
    if a.json:
        import tollway.messages
        import tollway.responses.request

        compiled = [m.__file__ for m in (tollway.messages, tollway.responses.request)]
        if not all(str(f).endswith(".so") for f in compiled):
            raise SystemExit(f"the compiled modules were not imported: {compiled}")
        print(json.dumps(measure(a.body, a.rounds, a.repeat)))
        return
    results = {"interpreted": measure(a.body, a.rounds, a.repeat)}
    if a.mypyc:
        with tempfile.TemporaryDirectory() as tmp:
            src = compiled_copy(Path(tmp))
            run = subprocess.run([sys.executable, __file__, "--json", "--body", a.body, "--rounds", str(a.rounds),
                                  "--repeat", str(a.repeat)], env={"PYTHONPATH": str(src), "PATH": ""},
                                 capture_output=True, text=True, cwd=tmp)
            if run.returncode:
                raise SystemExit("the compiled run failed:\n" + run.stderr)
            results["mypyc"] = json.loads(run.stdout)
    print(f"\n{a.body} body; best of {a.rounds} rounds of {a.repeat} calls\n")
    print(table(results))


if __name__ == "__main__":
    main()
