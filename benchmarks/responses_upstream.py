"""A Responses-native upstream for agent_relay_bench.py: ``POST /v1/responses``, instant answers.

The wire format is the one tests/agents/stub.py serves (the event sequence of OpenAI's
Responses API): ``response.created``, ``response.in_progress``, ``output_item.added``,
``content_part.added``, one ``output_text.delta`` per token, ``output_text.done``,
``content_part.done``, ``output_item.done``, ``response.completed`` with usage.  Built like
../shared/bench/upstream.py (asyncio Protocol, httptools, uvloop, byte templates) so that it
is never the bottleneck, and with its accounting: ``input_tokens = len(body) // 4``, one
output token per delta, ``max_output_tokens`` of them (else ``--stream-chunks``).
``--chunk-delay-ms`` paces the events (one write each, that long apart), as a model streams.

    python benchmarks/responses_upstream.py --port 0 --port-file PATH [--stream-chunks 64] [--chunk-delay-ms 0]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
from typing import Any

import httptools

try:
    import uvloop
except ImportError:  # still works, just slower
    uvloop = None  # type: ignore[assignment]

WORDS = [" alpha", " beta", " gamma", " delta", " epsilon", " zeta", " eta", " theta", " iota", " kappa"]


def sse(kind: str, seq: int, fields: dict[str, Any]) -> bytes:
    data = json.dumps({"type": kind, "sequence_number": seq, **fields}, separators=(",", ":"))
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), data.encode())


@functools.lru_cache(maxsize=64)  # the bench repeats one request: built once, not per request
def answer(model: str, n: int, input_tokens: int) -> list[bytes]:
    rid, mid = "resp_bench", "msg_bench"
    text = "".join(WORDS[i % len(WORDS)] for i in range(n))
    item = {"id": mid, "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}
    usage = {"input_tokens": input_tokens, "output_tokens": n, "total_tokens": input_tokens + n,
             "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
    response: dict[str, Any] = {"id": rid, "object": "response", "created_at": 1, "status": "completed",
                                "model": model, "output": [item], "usage": usage, "error": None,
                                "incomplete_details": None, "parallel_tool_calls": True, "tools": []}
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"output_index": 0, "item_id": mid, "content_index": 0}
    events = [sse("response.created", 0, {"response": pending}), sse("response.in_progress", 1, {"response": pending}),
              sse("response.output_item.added", 2, {"output_index": 0, "item": {**item, "content": [],
                                                                                  "status": "in_progress"}}),
              sse("response.content_part.added", 3, {**where, "part": part})]
    seq = 4
    for i in range(n):
        events.append(sse("response.output_text.delta", seq, {**where, "delta": WORDS[i % len(WORDS)],
                                                               "logprobs": []}))
        seq += 1
    events += [sse("response.output_text.done", seq, {**where, "text": text, "logprobs": []}),
               sse("response.content_part.done", seq + 1, {**where, "part": {**part, "text": text}}),
               sse("response.output_item.done", seq + 2, {"output_index": 0, "item": item}),
               sse("response.completed", seq + 3, {"response": response})]
    return events


class Protocol(asyncio.Protocol):
    stream_chunks = 64
    chunk_delay_s = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: Any = transport  # uvloop's transport is no asyncio.Transport subclass
        self.parser = httptools.HttpRequestParser(self)
        self.url, self.body = b"", []  # type: tuple[bytes, list[bytes]]

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        raw, path = b"".join(self.body), self.url.split(b"?")[0]
        self.url, self.body = b"", []
        keep = self.parser.should_keep_alive()
        if path != b"/v1/responses":
            self.reply(404, b'{"error":{"message":"no such route"}}', keep)
            return
        doc = json.loads(raw)
        n = int(doc.get("max_output_tokens") or self.stream_chunks)
        if not doc.get("stream"):
            self.reply(400, b'{"error":{"message":"this bench upstream only streams"}}', keep)
            return
        events = answer(str(doc.get("model", "echo")), n, len(raw) // 4)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n" \
            % sum(map(len, events))
        if self.chunk_delay_s > 0:
            self.pacing = asyncio.ensure_future(self.paced(head, events, keep))  # kept: not collected mid-stream
            return
        self.t.write(head + b"".join(events))
        if not keep:
            self.t.close()

    async def paced(self, head: bytes, events: list[bytes], keep: bool) -> None:
        self.t.write(head)
        for event in events:
            await asyncio.sleep(self.chunk_delay_s)
            if self.t.is_closing():
                return
            self.t.write(event)
        if not keep:
            self.t.close()

    def reply(self, status: int, body: bytes, keep: bool) -> None:
        self.t.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                     % (status, len(body), body))
        if not keep:
            self.t.close()

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--stream-chunks", type=int, default=64)
    ap.add_argument("--chunk-delay-ms", type=float, default=0.0)
    a = ap.parse_args()
    Protocol.stream_chunks = a.stream_chunks
    Protocol.chunk_delay_s = a.chunk_delay_ms / 1000

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Protocol, a.host, a.port, backlog=4096)
        if a.port_file:
            with open(a.port_file, "w") as f:
                f.write(str(server.sockets[0].getsockname()[1]))
        await server.serve_forever()

    if uvloop is not None:
        uvloop.run(serve())
    else:
        asyncio.run(serve())


if __name__ == "__main__":
    main()
