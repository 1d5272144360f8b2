"""A stream of OpenAI chat chunks as the Responses event sequence.

``response.created``, ``response.in_progress``; then per output item
``response.output_item.added``, its deltas (reasoning summary, output text, function call
arguments) and ``...done`` events, ``response.output_item.done``; finally
``response.completed`` (or ``response.incomplete``) with usage, or ``response.failed``.
Every event carries a ``sequence_number`` and goes out as ``event: <type>`` + ``data:``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson

from tollway.responses.output import call_item, message_item, new_item_id, reasoning_item, response_object
from tollway.responses.request import ResponsesRequest
from tollway.streaming import TextDeltaRuns, plain_text_delta, valid_texts


@dataclass(slots=True)
class _Item:
    kind: str  # "reasoning", "message" or "call"
    item_id: str
    index: int
    text: list[str] = field(default_factory=list)  # reasoning, output text or arguments
    details: list[dict[str, Any]] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    text_field: str | None = None  # where the upstream put its reasoning text
    prefix: bytes = b""  # a message's text delta event, from item_id to "delta": (the fast path)


# The event of a text delta of an open message: sequence number, the item's fields, the text.
_TEXT_EVENT = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
               b'"sequence_number":%d%b%b,"logprobs":[]}\n\n')
_TEXT_HEAD = _TEXT_EVENT[:_TEXT_EVENT.index(b"%d")]
_TEXT_TAIL = _TEXT_EVENT[_TEXT_EVENT.rindex(b"%b") + 2:]


class ResponseEventWriter:
    """Feeds on chat chunk bytes; emits Responses events; keeps the final ``response``."""

    def __init__(self, request: ResponsesRequest, response_id: str, model: str, provider: str,
                 created_at: int) -> None:
        self.request = request
        self.response_id = response_id
        self.model = model
        self.provider = provider
        self.created_at = created_at
        self.sequence = 0
        self.started = False
        self.output: list[dict[str, Any]] = []
        self.open: _Item | None = None
        self.calls: dict[int, _Item] = {}  # chat tool_calls index -> its item
        self.finish: str | None = None
        self.final: dict[str, Any] | None = None  # the finished response, once ended
        self.runs = TextDeltaRuns()

    def event(self, kind: str, payload: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **payload}
        self.sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

    def _response(self, status: str, **kwargs: Any) -> dict[str, Any]:
        return response_object(self.request, self.response_id, self.model, self.created_at,
                               list(self.output), status=status, **kwargs)

    def start(self) -> bytes:
        self.started = True
        # The same response object in both events: serialised once.
        response = orjson.dumps(self._response("in_progress", usage=None))
        out = b"".join(b'event: %b\ndata: {"type":"%b","sequence_number":%d,"response":%b}\n\n'
                       % (kind, kind, self.sequence + i, response)
                       for i, kind in enumerate((b"response.created", b"response.in_progress")))
        self.sequence += 2
        return out

    def feed(self, data: bytes) -> bytes:
        """A run of chat chunk events (no usage chunk, no [DONE]) as Responses events.

        Once a plain text delta has shown how the upstream spells one, runs of them become
        their events from the bytes (:meth:`tollway.streaming.TextDeltaRuns.take`: the whole
        run at once); only the other events are parsed.
        """
        item = self.open
        if item is not None and item.kind == "message":  # a token per read: no list, no loop
            single = self.runs.single(data)
            if single is not None:
                raw, text = single
                if raw == b'""':
                    return b""  # nothing to say
                item.text.append(text)
                self.sequence += 1
                return _TEXT_EVENT % (self.sequence - 1, item.prefix, raw)
        out: list[bytes] = [] if self.started else [self.start()]
        at, size = 0, len(data)
        while at < size:
            item = self.open
            if item is not None and item.kind == "message" and self.runs.starts(data, at):
                taken = self.runs.take(data, at)
                if taken is None:  # a doubt: event by event from here on
                    self._events(data[at:] if at else data, out)
                    break
                at, texts, decoded = taken
                item.text.extend(decoded)
                if b'""' in texts:
                    texts = [raw for raw in texts if raw != b'""']  # "" says nothing
                if texts:
                    out.append(self._text_events(item, texts))
                continue
            cut = data.find(b"\n\n", at)
            event = data[at:] if cut < 0 else data[at:cut]
            if event.startswith(b"data:"):
                self._event(event, out)
            if cut < 0:
                break
            at = cut + 2
        return b"".join(out)

    def _text_events(self, item: _Item, texts: list[bytes]) -> bytes:
        """The delta events of ``texts`` (raw JSON strings), numbered from ``self.sequence``,
        joined in C: no Python per event."""
        first = self.sequence
        self.sequence += len(texts)
        numbers = str(list(range(first, self.sequence)))[1:-1].encode().split(b", ")
        pieces = itertools.chain.from_iterable(zip(itertools.repeat(_TEXT_HEAD), numbers,
                                                   itertools.repeat(item.prefix), texts,
                                                   itertools.repeat(_TEXT_TAIL)))
        return b"".join(pieces)

    def _events(self, data: bytes, out: list[bytes]) -> None:
        """``data``'s events one by one (runs of learnt-spelling deltas still from bytes)."""
        events = data.split(b"\n\n")
        at, count = 0, len(events)
        while at < count:
            item = self.open
            if item is not None and item.kind == "message":
                end, texts = self.runs.run(events, at)
                decoded = valid_texts(texts) if texts else None
                if texts and decoded is None:  # a malformed text: the parsing path skips it
                    for event in events[at:end]:
                        self._event(event, out)
                    at = end
                    continue
                if decoded is not None:
                    item.text.extend(decoded)
                    seq, prefix = self.sequence, item.prefix
                    emitted = [_TEXT_EVENT % (seq + i, prefix, raw)
                               for i, raw in enumerate(raw for raw in texts if raw != b'""')]  # "" says nothing
                    self.sequence += len(emitted)
                    out.extend(emitted)
                    at = end
                    continue
            event = events[at]
            at += 1
            if event.startswith(b"data:"):
                self._event(event, out)

    def _event(self, event: bytes, out: list[bytes]) -> None:
        if self._text_delta(event, out):
            return
        try:
            chunk = orjson.loads(event[5:])
        except orjson.JSONDecodeError:
            return
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        for choice in choices or ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice, out)

    def _text_delta(self, event: bytes, out: list[bytes]) -> bool:
        """The common chunk, a bare text delta of an open message, turned into its event from the
        bytes: the JSON string is copied as it came, parsed only to keep the text.  Anything
        else (or any doubt) returns False for the parsing path."""
        span = plain_text_delta(event)
        if span is None:
            return False
        item = self.open
        if item is None or item.kind != "message":
            return False
        start, end = span
        raw = event[start:end]
        try:
            text = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return False
        self.runs.learn(event, start, end)
        if raw == b'""':
            return True  # nothing to say
        item.text.append(text)
        out.append(_TEXT_EVENT % (self.sequence, item.prefix, raw))
        self.sequence += 1
        return True

    # -- items -------------------------------------------------------------------------------

    def _add(self, kind: str, item: dict[str, Any], out: list[bytes]) -> _Item:
        self._close(out)
        opened = _Item(kind=kind, item_id=item["id"], index=len(self.output))
        self.output.append(item)  # replaced by the done item when it closes
        out.append(self.event("response.output_item.added", {"output_index": opened.index, "item": item}))
        self.open = opened
        return opened

    def _where(self, item: _Item) -> dict[str, Any]:
        return {"item_id": item.item_id, "output_index": item.index}

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        assert isinstance(delta, dict)
        text_field = "reasoning" if delta.get("reasoning") else "reasoning_content"
        reasoning = delta.get(text_field)
        details = [d for d in delta.get("reasoning_details") or () if isinstance(d, dict)]
        if (isinstance(reasoning, str) and reasoning) or details:
            item = self.open if self.open is not None and self.open.kind == "reasoning" else None
            if item is None:
                item = self._add("reasoning", {"type": "reasoning", "id": new_item_id("rs"), "summary": []},
                                 out)
                out.append(self.event("response.reasoning_summary_part.added", {
                    **self._where(item), "summary_index": 0, "part": {"type": "summary_text", "text": ""}}))
            item.details.extend(details)
            if isinstance(reasoning, str) and reasoning:
                item.text.append(reasoning)
                item.text_field = text_field
                out.append(self.event("response.reasoning_summary_text.delta",
                                      {**self._where(item), "summary_index": 0, "delta": reasoning}))
        text = delta.get("content")
        if isinstance(text, str) and text:
            item = self.open if self.open is not None and self.open.kind == "message" else None
            if item is None:
                item = self._add("message", message_item(new_item_id("msg"), "", "in_progress"), out)
                out.append(self.event("response.content_part.added", {
                    **self._where(item), "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}))
            item.text.append(text)
            item.prefix = (b',"item_id":' + orjson.dumps(item.item_id) + b',"output_index":'
                           + str(item.index).encode() + b',"content_index":0,"delta":')
            out.append(self.event("response.output_text.delta", {
                **self._where(item), "content_index": 0, "delta": text, "logprobs": []}))
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self._call(call, out)
        if choice.get("finish_reason"):
            self.finish = str(choice["finish_reason"])

    def _call(self, call: dict[str, Any], out: list[bytes]) -> None:
        position = call.get("index", 0)
        fn = call.get("function") if isinstance(call.get("function"), dict) else {}
        assert isinstance(fn, dict)
        item = self.calls.get(position)
        if item is None:
            call_id = str(call.get("id") or new_item_id("call"))
            name = str(fn.get("name") or "")
            added = call_item(self.request, new_item_id("fc"), call_id, name, "", "in_progress")
            if added["type"] == "custom_tool_call":
                added["input"] = ""
            item = self._add("call", added, out)
            item.call_id, item.name = call_id, name
            self.calls[position] = item
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.text.append(arguments)
            # A freeform tool's input is JSON-wrapped upstream; it is sent whole when done.
            if item is self.open and item.name not in self.request.tools.custom:
                out.append(self.event("response.function_call_arguments.delta",
                                      {**self._where(item), "delta": arguments}))

    def _close(self, out: list[bytes]) -> None:
        item, self.open = self.open, None
        if item is None:
            return
        where = self._where(item)
        text = "".join(item.text)
        if item.kind == "reasoning":
            out.append(self.event("response.reasoning_summary_text.done", {**where, "summary_index": 0, "text": text}))
            out.append(self.event("response.reasoning_summary_part.done", {
                **where, "summary_index": 0, "part": {"type": "summary_text", "text": text}}))
            done = reasoning_item(item.item_id, text, self.provider, item.details, item.text_field)
        elif item.kind == "message":
            done = message_item(item.item_id, text)
            out.append(self.event("response.output_text.done", {**where, "content_index": 0, "text": text,
                                                                "logprobs": []}))
            out.append(self.event("response.content_part.done", {**where, "content_index": 0,
                                                                 "part": done["content"][0]}))
        else:
            done = call_item(self.request, item.item_id, item.call_id, item.name, text)
            if done["type"] == "function_call":
                out.append(self.event("response.function_call_arguments.done",
                                      {**where, "name": item.name, "arguments": text}))
        self.output[item.index] = done
        out.append(self.event("response.output_item.done", {"output_index": item.index, "item": done}))

    # -- the end -----------------------------------------------------------------------------

    def end(self, usage: dict[str, Any], finish: str | None) -> bytes:
        """Close the open item; ``response.completed`` (or ``.incomplete``) with usage."""
        out: list[bytes] = [] if self.started else [self.start()]
        self._close(out)
        response = self._response("completed", usage=usage, finish_reason=finish or self.finish)
        self.final = response
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        out.append(self.event(kind, {"response": response}))
        return b"".join(out)

    def failed(self, message: str) -> bytes:
        """``response.failed``: the upstream broke after the stream began."""
        out: list[bytes] = [] if self.started else [self.start()]
        response = self._response("failed", usage=None,
                                  error={"code": "server_error", "message": message})
        out.append(self.event("response.failed", {"response": response}))
        return b"".join(out)

