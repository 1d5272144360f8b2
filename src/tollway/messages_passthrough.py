"""A ``/v1/messages`` body read for the pass-through to Anthropic-format upstreams, without
decoding its conversation.

Most of what a long agent conversation costs the gateway is reading it: ``orjson.loads``
builds a Python object for every message, block and string of a 200 KB body, the check walks
them, and ``orjson.dumps`` writes them all again for the upstream.  A pass-through reads none
of that content: its upstream speaks the same format and checks the conversation itself
(its 400 reaches the client in the same shape).  So here msgspec reads the top-level fields
as Python values and each message only as the span of raw JSON it is (``msgspec.Raw``: the
body is still checked to be JSON throughout), and writing the conversation again for the
upstream is a copy.  That costs less than ``orjson.loads`` of the same body alone
(measured in the README's relay section).

What tollway itself reads is decoded and checked as the ordinary parse checks it: the
top-level fields, and the first messages, which the routing view (sticky sessions) reads.
The rest of the conversation is decoded only if something needs it as Python objects (a
local token estimate), and then checked first.

Unknown top-level fields are refused rather than dropped (``forbid_unknown_fields``): the
caller then parses the body the ordinary way.  Keys may reach the upstream in another order,
and a duplicate top-level key only once: the last, as every other parse in tollway reads it,
so the upstream cannot serve a model other than the one tollway routed and bills.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import orjson
from msgspec import UNSET, Raw


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """Every top-level field the Messages API (and tollway's routing extensions) takes; all but
    ``messages`` decoded as plain Python values, for the ordinary checks to read."""

    messages: list[Raw]
    model: Any = UNSET
    max_tokens: Any = UNSET
    stream: Any = UNSET
    system: Any = UNSET
    tools: Any = UNSET
    tool_choice: Any = UNSET
    thinking: Any = UNSET
    metadata: Any = UNSET
    output_config: Any = UNSET
    stop_sequences: Any = UNSET
    temperature: Any = UNSET
    top_p: Any = UNSET
    top_k: Any = UNSET
    context_management: Any = UNSET
    container: Any = UNSET
    mcp_servers: Any = UNSET
    service_tier: Any = UNSET
    inference_geo: Any = UNSET
    models: Any = UNSET
    provider: Any = UNSET
    session_id: Any = UNSET


_TOP_LEVEL = tuple(name for name in _Body.__struct_fields__ if name != "messages")
_DECODER = msgspec.json.Decoder(_Body)
_ENCODER = msgspec.json.Encoder()


class Conversation:
    """The ``messages`` of a pass-through body as raw JSON: all of it for the upstream
    (``json``), or message by message as the ordinary parse would have read them."""

    __slots__ = ("_messages", "json")

    def __init__(self, messages: list[Raw]) -> None:
        self._messages = messages
        self.json = _ENCODER.encode(messages)

    def __len__(self) -> int:
        return len(self._messages)

    def dicts(self) -> Iterator[Any]:
        """Each message decoded when the iteration reaches it (the routing view reads two)."""
        return (orjson.loads(memoryview(message)) for message in self._messages)


def worth_reading_raw(messages: list[Raw]) -> bool:
    """Whether the messages the routing view decodes anyway (the first two, mostly) are the
    smaller part of the conversation: otherwise reading it raw first costs more than reading
    it once as objects (a single 200 KB prompt is decoded either way)."""
    return 2 * sum(map(len, messages[:2])) < sum(map(len, messages))


def read(raw: bytes) -> tuple[dict[str, Any], Conversation] | None:
    """The top-level fields (``messages`` left out) and the conversation; None when the body
    is anything ``_Body`` does not describe (the ordinary parse then decides)."""
    try:
        body = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not worth_reading_raw(body.messages):
        return None
    if not raw.isascii():
        # msgspec does not check the UTF-8 of what it skips; the ordinary parse refuses bad UTF-8.
        try:
            raw.decode()
        except UnicodeDecodeError:
            return None
    fields = {name: value for name in _TOP_LEVEL if (value := getattr(body, name)) is not UNSET}
    return fields, Conversation(body.messages)
