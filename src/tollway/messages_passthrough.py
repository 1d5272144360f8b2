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
from msgspec import Raw

from tollway.raw_body import RawBodyReader, spans_json

# Every top-level field the Messages API (and tollway's routing extensions) takes.
_READER = RawBodyReader("messages", (
    "model", "max_tokens", "stream", "system", "tools", "tool_choice", "thinking", "metadata", "output_config",
    "stop_sequences", "temperature", "top_p", "top_k", "context_management", "container", "mcp_servers",
    "service_tier", "inference_geo", "models", "provider", "session_id"))


class Conversation:
    """The ``messages`` of a pass-through body as raw JSON: all of it for the upstream
    (``json``), or message by message as the ordinary parse would have read them."""

    __slots__ = ("_messages", "json")

    def __init__(self, messages: list[Raw]) -> None:
        self._messages = messages
        self.json = spans_json(messages)

    def dicts(self) -> Iterator[Any]:
        """Each message decoded when the iteration reaches it (the routing view reads two)."""
        return (orjson.loads(memoryview(message)) for message in self._messages)


def read(raw: bytes) -> tuple[dict[str, Any], Conversation] | None:
    """The top-level fields (``messages`` left out) and the conversation; None when the body
    is anything else (the ordinary parse then decides)."""
    read = _READER.read(raw)
    return None if read is None else (read[0], Conversation(read[1]))
