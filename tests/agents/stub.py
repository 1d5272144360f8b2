"""A stub upstream for agent runs, speaking three wire formats on one loopback port:

* ``/an/v1/messages``: Anthropic Messages (events or a message),
* ``/oa/v1/chat/completions``: OpenAI chat (chunks with a usage chunk, or a completion),
* ``/rs/v1/responses``: OpenAI Responses (the full event sequence, or a response).

It answers by looking at the request, not by position, since an agent may send requests
we do not script: if the conversation already holds the result of the stub's tool call,
it finishes with a text naming what it found; if a tool call is scripted it asks for it;
otherwise it answers with text.  Every answer's usage is kept in ``served``, so a test can
compare the ledger with exactly what the upstream billed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.support.servers import aiohttp_server

CALL_ID = "call_tw_1"


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class Served:
    path: str
    input_tokens: int
    output_tokens: int
    text: str | None
    tool: str | None


@dataclass
class AgentStub:
    answer: str = "Hello from the stub."
    tool_call: ToolCall | None = None
    secret: str = ""  # what the tool result must contain for the stub to say it was found
    served: list[Served] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    def reset(self, *, answer: str = "Hello from the stub.", tool_call: ToolCall | None = None,
              secret: str = "") -> None:
        self.answer, self.tool_call, self.secret = answer, tool_call, secret
        self.served.clear()
        self.requests.clear()

    # -- deciding -------------------------------------------------------------------------

    def _decide(self, path: str, body: dict[str, Any]) -> tuple[str | None, ToolCall | None]:
        result = _tool_result(path, body)
        if result is not None:
            found = "found" if self.secret and self.secret in result else "did not find"
            return f"Done: {found} {self.secret}.", None
        if self.tool_call is not None:
            return None, self.tool_call
        return self.answer, None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append((request.path, {k.lower(): v for k, v in request.headers.items()}, body))
        text, call = self._decide(request.path, body)
        # Distinct, request-dependent counts, so a metering test can't pass by accident.
        served = Served(request.path, input_tokens=1000 + 7 * len(self.served) + len(body.get("tools") or ()),
                        output_tokens=11 + len(self.served), text=text, tool=call.name if call else None)
        self.served.append(served)
        stream = body.get("stream") is True
        if request.path.endswith("/messages"):
            payload = _anthropic(body, served, call, stream)
        elif request.path.endswith("/chat/completions"):
            payload = _chat(body, served, call, stream)
        elif request.path.endswith("/responses"):
            payload = _responses(body, served, call, stream)
        else:
            return web.json_response({"error": {"message": f"stub: no {request.path}"}}, status=404)
        if not stream:
            return web.Response(body=payload, content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(payload), 41):  # events straddle reads
            await resp.write(payload[i:i + 41])
        await resp.write_eof()
        return resp


@contextmanager
def running_agent_stub() -> Iterator[tuple[AgentStub, str]]:
    stub = AgentStub()
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("POST", "/{tail:.*}", stub.handle)
    with aiohttp_server(app) as url:
        yield stub, url


# -- reading tool results in each format ----------------------------------------------------------


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text_of(c.get("text") or c.get("content") or c.get("output") or "")
                       for c in content if isinstance(c, dict))
    return ""


def _tool_result(path: str, body: dict[str, Any]) -> str | None:
    if path.endswith("/messages"):
        for message in body.get("messages") or ():
            for block in message.get("content") if isinstance(message.get("content"), list) else ():
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    return _text_of(block.get("content"))
    elif path.endswith("/chat/completions"):
        for message in body.get("messages") or ():
            if message.get("role") == "tool":
                return _text_of(message.get("content"))
    else:
        items = body.get("input")
        for item in items if isinstance(items, list) else ():
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                return _text_of(item.get("output"))
    return None


# -- answering in each format ------------------------------------------------------------------


def _sse(name: str | None, data: Any) -> bytes:
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + (data if isinstance(data, bytes) else orjson.dumps(data)) + b"\n\n"


def _anthropic(body: dict[str, Any], served: Served, call: ToolCall | None, stream: bool) -> bytes:
    model = body.get("model", "claude-up")
    block: dict[str, Any] = {"type": "tool_use", "id": "toolu_tw_1", "name": call.name, "input": call.arguments} \
        if call else {"type": "text", "text": served.text}
    stop = "tool_use" if call else "end_turn"
    usage = {"input_tokens": served.input_tokens, "output_tokens": served.output_tokens,
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    if not stream:
        return orjson.dumps({"id": "msg_tw", "type": "message", "role": "assistant", "model": model,
                             "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage})
    start_block = {**block, "input": {}} if call else {"type": "text", "text": ""}
    delta = {"type": "input_json_delta", "partial_json": orjson.dumps(call.arguments).decode()} if call \
        else {"type": "text_delta", "text": served.text}
    return b"".join([
        _sse("message_start", {"type": "message_start", "message": {
            "id": "msg_tw", "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1}}}),
        _sse("ping", {"type": "ping"}),
        _sse("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start_block}),
        _sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        _sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
        _sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                               "usage": {"output_tokens": served.output_tokens}}),
        _sse("message_stop", {"type": "message_stop"}),
    ])


def _chat(body: dict[str, Any], served: Served, call: ToolCall | None, stream: bool) -> bytes:
    model = body.get("model", "gpt-up")
    usage = {"prompt_tokens": served.input_tokens, "completion_tokens": served.output_tokens,
             "total_tokens": served.input_tokens + served.output_tokens}
    finish = "tool_calls" if call else "stop"
    tool_calls = [{"id": CALL_ID, "type": "function",
                   "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()}}] \
        if call else None
    if not stream:
        message: dict[str, Any] = {"role": "assistant", "content": None if call else served.text}
        if tool_calls:
            message["tool_calls"] = tool_calls
        return orjson.dumps({"id": "chatcmpl-tw", "object": "chat.completion", "created": 1, "model": model,
                             "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                             "usage": usage})

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        return _sse(None, {"id": "chatcmpl-tw", "object": "chat.completion.chunk", "created": 1, "model": model,
                           "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})

    content = chunk({"tool_calls": [{"index": 0, **tool_calls[0]}]}) if tool_calls \
        else chunk({"content": served.text})
    return b"".join([
        chunk({"role": "assistant", "content": ""}), content, chunk({}, finish),
        _sse(None, {"id": "chatcmpl-tw", "object": "chat.completion.chunk", "created": 1, "model": model,
                    "choices": [], "usage": usage}),
        _sse(None, b"[DONE]"),
    ])


def _responses(body: dict[str, Any], served: Served, call: ToolCall | None, stream: bool) -> bytes:
    model = body.get("model", "resp-up")
    if call:
        item: dict[str, Any] = {"id": "fc_tw_1", "type": "function_call", "status": "completed",
                                "call_id": CALL_ID, "name": call.name,
                                "arguments": orjson.dumps(call.arguments).decode()}
    else:
        item = {"id": "msg_tw_1", "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": served.text, "annotations": []}]}
    usage = {"input_tokens": served.input_tokens, "output_tokens": served.output_tokens,
             "total_tokens": served.input_tokens + served.output_tokens,
             "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}
    response: dict[str, Any] = {
        "id": "resp_tw", "object": "response", "created_at": 1, "status": "completed", "model": model,
        "output": [item], "usage": usage, "error": None, "incomplete_details": None,
        "instructions": None, "metadata": {}, "parallel_tool_calls": True, "temperature": 1.0,
        "tool_choice": "auto", "tools": [], "top_p": 1.0}
    if not stream:
        return orjson.dumps(response)
    pending = {**response, "status": "in_progress", "output": [], "usage": None}
    seq = iter(range(1000))

    def event(kind: str, **data: Any) -> bytes:
        return _sse(kind, {"type": kind, "sequence_number": next(seq), **data})

    events = [event("response.created", response=pending), event("response.in_progress", response=pending)]
    if call:
        events += [
            event("response.output_item.added", output_index=0,
                  item={**item, "arguments": "", "status": "in_progress"}),
            event("response.function_call_arguments.delta", output_index=0, item_id=item["id"],
                  delta=item["arguments"]),
            event("response.function_call_arguments.done", output_index=0, item_id=item["id"],
                  arguments=item["arguments"]),
        ]
    else:
        part = {"type": "output_text", "text": "", "annotations": []}
        events += [
            event("response.output_item.added", output_index=0,
                  item={**item, "content": [], "status": "in_progress"}),
            event("response.content_part.added", output_index=0, item_id=item["id"], content_index=0, part=part),
            event("response.output_text.delta", output_index=0, item_id=item["id"], content_index=0,
                  delta=served.text, logprobs=[]),
            event("response.output_text.done", output_index=0, item_id=item["id"], content_index=0,
                  text=served.text, logprobs=[]),
            event("response.content_part.done", output_index=0, item_id=item["id"], content_index=0,
                  part={**part, "text": served.text}),
        ]
    events += [event("response.output_item.done", output_index=0, item=item),
               event("response.completed", response=response)]
    return b"".join(events)
