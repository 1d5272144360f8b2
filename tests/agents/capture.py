"""Record what an agent CLI sends: ``python -m tests.agents.capture PORT OUT.jsonl``.

A loopback server that answers ``/v1/messages`` (Anthropic events) and ``/v1/responses``
(Responses events) with a one-word reply and appends every request it sees (method, path,
query, headers, JSON body) to OUT.jsonl.  Used to write the fixtures in
tests/fixtures/agents; the acceptance tests do not need it.
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
from aiohttp import web


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _messages_events(model: str) -> bytes:
    usage = {"input_tokens": 10, "output_tokens": 2}
    return b"".join([
        _sse("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": usage}}),
        _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
        _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": "Hello."}}),
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                                                  "stop_sequence": None}, "usage": usage}),
        _sse("message_stop", {"type": "message_stop"}),
    ])


def _responses_events(model: str) -> bytes:
    item = {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Hello.", "annotations": []}]}
    response = {"id": "resp_1", "object": "response", "created_at": 0, "status": "completed", "model": model,
                "output": [item], "usage": {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12,
                                            "input_tokens_details": {"cached_tokens": 0},
                                            "output_tokens_details": {"reasoning_tokens": 0}}}
    return b"".join([
        _sse("response.created", {"type": "response.created", "sequence_number": 0,
                                  "response": {**response, "status": "in_progress", "output": []}}),
        _sse("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 1,
                                           "output_index": 0, "item": item}),
        _sse("response.completed", {"type": "response.completed", "sequence_number": 2, "response": response}),
    ])


def make_app(out: str) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        headers = {str(k): v for k, v in request.headers.items()}
        with open(out, "ab") as f:
            f.write(orjson.dumps({"method": request.method, "path": request.path, "query": request.query_string,
                                  "headers": headers, "body": body}) + b"\n")
        model = body.get("model", "m") if isinstance(body, dict) else "m"
        if request.path.endswith("/messages") and isinstance(body, dict):
            if body.get("stream"):
                return web.Response(body=_messages_events(model), content_type="text/event-stream")
            return web.json_response({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                                      "content": [{"type": "text", "text": "Hello."}],
                                      "stop_reason": "end_turn", "stop_sequence": None,
                                      "usage": {"input_tokens": 10, "output_tokens": 2}})
        if request.path.endswith("/count_tokens"):
            return web.json_response({"input_tokens": 10})
        if request.path.endswith("/responses"):
            return web.Response(body=_responses_events(model), content_type="text/event-stream")
        return web.json_response({"error": {"message": "capture: not served"}}, status=404)

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


if __name__ == "__main__":
    web.run_app(make_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]))
