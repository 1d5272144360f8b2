"""SSE out to the client: the closing usage chunk, mid-stream errors, disconnect handling.

Adapters yield OpenAI chunk bytes; this module ends every stream the same way (a usage
chunk with ``choices: []`` and the cost, then ``data: [DONE]``), and
:class:`SSEResponse` relays it while watching for the client hanging up, so a
cancelled stream is closed upstream at once and billed for what was generated.  For the
other APIs, :func:`translate_stream` feeds the chunks to that API's event writer, which
turns runs of plain text deltas into events from their bytes (:class:`TextDeltaRuns`).
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Protocol

import orjson
from starlette.types import Receive, Scope, Send

from tollway.adapters.base import Adapter, CallContext, MidStreamError, StreamState, Target
from tollway.metering import Usage, estimate_tokens_from_bytes, nano_to_usd

DONE = b"data: [DONE]\n\n"


def render_usage(usage: Usage, cost_nano: int, prompt_cost_nano: int | None = None) -> dict[str, Any]:
    """OpenAI's usage object with OpenRouter's ``cost`` (USD) and ``cost_details``, plus
    tollway's exact figure (integer nano-dollars) in a ``tollway`` extension object."""
    prompt_nano = cost_nano if prompt_cost_nano is None else prompt_cost_nano
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens,
                                  "cache_write_tokens": usage.cache_write_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cost": nano_to_usd(cost_nano),
        "is_byok": False,
        "cost_details": {"upstream_inference_cost": None,
                         "upstream_inference_prompt_cost": nano_to_usd(prompt_nano),
                         "upstream_inference_completions_cost": nano_to_usd(cost_nano - prompt_nano)},
        "tollway": {"cost_nanousd": cost_nano, "estimated": usage.estimated},
    }


def _provider(target: Target) -> str:
    return target.provider.display_name or target.provider.name


def final_chunks(generation_id: str, target: Target, usage: dict[str, Any]) -> bytes:
    chunk = {"id": generation_id, "object": "chat.completion.chunk", "created": int(time.time()),
             "model": target.model.id, "provider": _provider(target),
             "choices": [], "usage": usage}
    return b"data: " + orjson.dumps(chunk) + b"\n\n" + DONE


def midstream_error_chunk(generation_id: str, target: Target, exc: MidStreamError) -> bytes:
    """OpenRouter's mid-stream error: ``finish_reason: "error"`` plus an ``error`` object."""
    chunk = {
        "id": generation_id, "object": "chat.completion.chunk", "created": int(time.time()),
        "model": target.model.id, "provider": _provider(target),
        "error": {"code": 502, "message": exc.message,
                  "metadata": {"provider_name": exc.provider}},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error",
                     "native_finish_reason": "error"}],
    }
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def stream_usage(state: StreamState, prompt_estimate: Callable[[], int]) -> Usage:
    """What a finished or cut stream is billed for.

    The upstream's usage when it covers the output; when it covers only the prompt
    (Anthropic's ``message_start`` placeholder, Gemini's counts before the finishing
    chunk: the stream was cut), its prompt counts plus the estimate of the text sent;
    with no usage at all, the local estimate.  Anything not the upstream's own final
    count is marked estimated.
    """
    usage = state.usage
    if usage is not None and not state.usage_partial:
        return usage
    if usage is None:
        return estimate_stream_usage(state, prompt_estimate())
    sent = estimate_stream_usage(state, 0).completion_tokens
    return Usage(prompt_tokens=usage.prompt_tokens, completion_tokens=sent, cached_tokens=usage.cached_tokens,
                 cache_write_tokens=usage.cache_write_tokens, reasoning_tokens=min(usage.reasoning_tokens, sent),
                 estimated=True)


def estimate_stream_usage(state: StreamState, prompt_estimate: int) -> Usage:
    """Count tokens locally from the relayed chunks when the upstream reported none."""
    text_bytes = state.sent_text_bytes()
    if not text_bytes:
        for block in state.relayed:
            for event in block.split(b"\n\n"):
                if not event.startswith(b"data:"):
                    continue
                try:
                    obj = orjson.loads(event[5:])
                except orjson.JSONDecodeError:
                    continue
                for choice in obj.get("choices") or () if isinstance(obj, dict) else ():
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    if not isinstance(delta, dict):
                        continue
                    for field in ("content", "reasoning", "reasoning_content"):
                        if isinstance(delta.get(field), str):
                            text_bytes += len(delta[field].encode("utf-8", "replace"))
                    for call in delta.get("tool_calls") or ():
                        fn = call.get("function") if isinstance(call, dict) else None
                        if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                            text_bytes += len(fn["arguments"])
    return Usage(prompt_tokens=prompt_estimate, completion_tokens=estimate_tokens_from_bytes(text_bytes),
                 estimated=True)


# -- plain text deltas: the bulk of a translated stream ------------------------------------------

# A chunk whose delta is text alone, of choice 0, not finishing.
_CONTENT_DELTA = b'"delta":{"content":'
_DELTA_CLOSE = (b'},', b'}}')
_NOT_FINISHED = b'"finish_reason":null'
_FIRST_CHOICE = b'"index":0'


def _string_end(data: bytes, start: int) -> int:
    """The offset just past the JSON string starting at ``start`` (a quote), or -1."""
    if data[start:start + 1] != b'"':
        return -1
    at = start + 1
    while True:
        at = data.find(b'"', at)
        if at < 0:
            return -1
        backslashes = 0
        while data[at - 1 - backslashes] == 0x5C:  # an escaped quote is preceded by an odd run
            backslashes += 1
        if backslashes % 2 == 0:
            return at + 1
        at += 1


def plain_text_delta(event: bytes) -> tuple[int, int] | None:
    """Where the JSON string of ``event``'s text sits, if the event (one ``data:`` chat chunk,
    no terminator) is a plain text delta: one choice, index 0, a delta of ``content`` alone,
    no finish reason.  None for anything else, or on any doubt."""
    start = event.find(_CONTENT_DELTA)
    if start < 0 or _NOT_FINISHED not in event:
        return None
    start += len(_CONTENT_DELTA)
    end = _string_end(event, start)
    if end < 0 or event[end:end + 2] not in _DELTA_CLOSE or event.count(b'"index":') != 1 \
            or _FIRST_CHOICE not in event:
        return None
    return start, end


class TextDeltaRuns:
    """Finds runs of plain text-delta chunks in a stream's events, without parsing them.

    Translating a stream (to Anthropic's or to Responses events) means parsing every chunk;
    but nearly all of a stream is text deltas that differ only in their text.  Once one has
    been parsed (:meth:`learn`: the bytes around its text), every later chunk spelt the same
    way is recognised by the bytes around its text, and the writer turns the run into its
    events with a byte template, after one JSON validation of all the texts together.  A
    chunk spelt any other way (another ``created``, more fields) ends the run: it goes the
    writer's parsing path.

    :meth:`take` finds a run in a read buffer in a few passes of C code (one split, one
    parse and one serialisation of all its texts), nothing per chunk in Python;
    :meth:`run` does the same one event at a time, for a buffer :meth:`take` declines.
    """

    __slots__ = ("_close", "prefix", "suffix")

    def __init__(self) -> None:
        self.prefix: bytes | None = None
        self.suffix = b""
        self._close = b""  # a learnt delta's end, event terminator included

    def learn(self, event: bytes, start: int, end: int) -> None:
        """``event[start:end]`` is the text of a plain text delta (see :func:`plain_text_delta`):
        later deltas spelt like it form runs.  Each delta the parsing path meets is learnt
        again, so an upstream whose chunks change spelling (a new ``created`` every second)
        is followed."""
        self.prefix, self.suffix = event[:start], event[end:]
        self._close = self.suffix + b"\n\n"

    def starts(self, data: bytes, at: int) -> bool:
        """Whether the event at offset ``at`` of ``data`` begins as a learnt delta does."""
        return self.prefix is not None and data.startswith(self.prefix, at)

    def take(self, data: bytes, at: int) -> tuple[int, list[bytes], list[str]] | None:
        """The run of learnt-spelling deltas starting at offset ``at`` of ``data`` (whole
        ``\\n\\n``-terminated events; :meth:`starts` says one begins there): where it ends,
        each delta's text as the JSON string it came as, and decoded.  None on any doubt (a
        text that is not one JSON string spelt as orjson spells it): the caller then goes
        event by event (:meth:`run`, the parsing path).

        Exact without parsing each event: the events are cut at the learnt suffix +
        ``\\n\\n`` (no JSON string holds a raw newline, so no text can hold it); the run is
        the leading pieces that begin with the learnt prefix and hold no newline (a piece
        that does spans events: the run ends before it); their texts must parse, as a list,
        into exactly one string each and serialise back to the same bytes.
        """
        prefix = self.prefix
        if prefix is None:
            return None
        pieces = (data[at:] if at else data).split(self._close)
        del pieces[-1]  # what follows the last complete event
        starts = list(map(bytes.startswith, pieces, itertools.repeat(prefix)))
        if False in starts:
            del pieces[starts.index(False):]
        close = len(self._close)
        end = at + sum(map(len, pieces)) + len(pieces) * close
        if data.count(b"\n", at, end) != 2 * len(pieces):  # some piece spans events
            broken = list(map(bytes.__contains__, pieces, itertools.repeat(b"\n")))
            del pieces[broken.index(True) if True in broken else 0:]
            end = at + sum(map(len, pieces)) + len(pieces) * close
        if not pieces:
            return None
        texts = list(map(operator.itemgetter(slice(len(prefix), None)), pieces))
        joined = b"[" + b",".join(texts) + b"]"
        try:
            decoded = orjson.loads(joined)
        except orjson.JSONDecodeError:
            return None
        if type(decoded) is not list or len(decoded) != len(texts) or set(map(type, decoded)) != {str} \
                or orjson.dumps(decoded) != joined:
            return None
        return end, texts, decoded

    def single(self, data: bytes) -> tuple[bytes, str] | None:
        """``data`` (one network read) as exactly one learnt-spelling delta: its text as the
        JSON string it came as, and decoded; None for anything else (a read of several
        events, another event, a text not spelt as orjson spells it), which :meth:`take` or
        the parsing path then reads.  A model streams a token per read: this is most reads,
        and it costs a third of :meth:`take`'s passes over a one-event buffer."""
        prefix, close = self.prefix, self._close
        if prefix is None or not data.startswith(prefix) or not data.endswith(close):
            return None
        raw = data[len(prefix):len(data) - len(close)]
        try:
            text = orjson.loads(raw)
        except orjson.JSONDecodeError:  # several events, or a malformed text
            return None
        # One JSON string spelt as orjson spells it: no event boundary or other field inside.
        if type(text) is not str or orjson.dumps(text) != raw:
            return None
        return raw, text

    def run(self, events: list[bytes], start: int) -> tuple[int, list[bytes]]:
        """The run of learnt-spelling deltas from ``events[start]`` (events split apart, no
        terminators): where it ends, and the raw JSON string of each delta's text."""
        prefix, suffix = self.prefix, self.suffix
        texts: list[bytes] = []
        if prefix is None:
            return start, texts
        head, tail = len(prefix), len(suffix)
        end = start
        for event in itertools.islice(events, start, None):
            if not (event.startswith(prefix) and event.endswith(suffix)):
                break
            raw = event[head:len(event) - tail]
            # One JSON string: quoted at both ends, no unescaped quote between.
            simple = raw.count(b'"') == 2 and len(raw) >= 2 and raw[0] == raw[-1] == 0x22
            if not simple and _string_end(raw, 0) != len(raw):
                break
            texts.append(raw)
            end += 1
        return end, texts


def valid_texts(texts: list[bytes]) -> list[str] | None:
    """The run's texts decoded (one parse for the whole run), or None if any is not a valid
    JSON string (the run then takes the parsing path, which skips what is malformed)."""
    try:
        decoded = orjson.loads(b"[" + b",".join(texts) + b"]")
    except orjson.JSONDecodeError:
        return None
    return decoded if isinstance(decoded, list) and len(decoded) == len(texts) else None


class SSEResponse:
    """A streaming ASGI response that cancels its producer when the client disconnects."""

    def __init__(self, iterator: AsyncIterator[bytes], headers: dict[str, str] | None = None) -> None:
        self.iterator = iterator
        self.headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no")]
        for name, value in (headers or {}).items():
            self.headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.headers})
        # The stream is relayed in this task; a small watcher task cancels it if the
        # client hangs up (uvicorn's send() after a disconnect is a silent no-op, so the
        # relay itself would never notice).  One extra task per stream, nothing per chunk.
        relay = asyncio.current_task()
        assert relay is not None
        hung_up = finished = False

        def on_disconnect(watcher: asyncio.Task[None]) -> None:
            nonlocal hung_up
            # A callback already scheduled when the relay finished must not cancel
            # whatever the server runs next in this task.
            if not finished and not watcher.cancelled():
                hung_up = True
                relay.cancel()

        watch = asyncio.ensure_future(self._watch(receive))
        watch.add_done_callback(on_disconnect)
        try:
            await self._pump(send)
        except asyncio.CancelledError:
            if not hung_up:
                raise  # cancelled from outside (shutdown): propagate
            relay.uncancel()  # our own cancellation: the client is gone, the response is over
        finally:
            finished = True
            watch.remove_done_callback(on_disconnect)
            watch.cancel()

    async def _pump(self, send: Send) -> None:
        iterator = self.iterator
        try:
            async for chunk in iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _watch(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return


# -- translated streams ---------------------------------------------------------------------------


class ChunkTranslator(Protocol):
    """What turns an adapter's OpenAI chunks into another API's events
    (``tollway.messages.EventWriter``: Anthropic Messages; ``tollway.responses.events.ResponseEventWriter``:
    Responses)."""

    def feed(self, data: bytes) -> bytes: ...


async def translate_stream(adapter: Adapter, target: Target, body: dict[str, Any], ctx: CallContext,
                           state: StreamState, writer: ChunkTranslator) -> AsyncGenerator[bytes, None]:
    """The adapter's OpenAI chunk stream for ``body`` as the writer's events (the closing events
    come from the writer's ``end``, once usage is known); closing this closes the adapter's
    stream.  The call is marked translated (:attr:`CallContext.translated`): the chunks reach
    the writer as the upstream spelt them, never the client."""
    ctx.translated = True
    chunks = adapter.stream(target, body, ctx, state)
    try:
        async for data in chunks:
            out = writer.feed(data)
            if out:
                yield out
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
