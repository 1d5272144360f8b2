"""A ``/v1/messages`` body read for the pass-through to Anthropic-format upstreams, without
decoding its conversation (:mod:`tollway.raw_body`).

What tollway itself reads is decoded and checked as the ordinary parse checks it: the
top-level fields, and the first messages, which the routing view (sticky sessions) reads.
The rest of the conversation is decoded only if something needs it as Python objects (a
local token estimate), and then checked first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from tollway.json_body import Spans
from tollway.raw_body import RawBodyReader

# Every top-level field the Messages API (and tollway's routing extensions) takes.
_READER = RawBodyReader("messages", (
    "model", "max_tokens", "stream", "system", "tools", "tool_choice", "thinking", "metadata", "output_config",
    "stop_sequences", "temperature", "top_p", "top_k", "context_management", "container", "mcp_servers",
    "service_tier", "inference_geo", "models", "provider", "session_id"))


class Conversation:
    """The ``messages`` of a pass-through body as raw JSON: the spans, which the upstream body
    is written around (:func:`tollway.json_body.encode_body`); the whole array as one JSON
    document (``json``, written on first use); or message by message as the ordinary parse
    would have read them."""

    __slots__ = ("_json", "spans")

    def __init__(self, spans: Spans) -> None:
        self.spans = spans
        self._json: bytes | None = None

    @property
    def json(self) -> bytes:
        """The conversation as one JSON array, for what decodes it whole (a translation for a
        local token estimate): written once, when first asked for."""
        if self._json is None:
            self._json = self.spans.json()
        return self._json

    def dicts(self) -> Iterator[Any]:
        """Each message decoded when the iteration reaches it (the routing view reads two)."""
        return (orjson.loads(memoryview(message)) for message in self.spans)


def read(raw: bytes) -> tuple[dict[str, Any], Conversation] | None:
    """The top-level fields (``messages`` left out) and the conversation; None when the body
    is anything else (the ordinary parse then decides)."""
    read = _READER.read(raw)
    return None if read is None else (read[0], Conversation(read[1]))
