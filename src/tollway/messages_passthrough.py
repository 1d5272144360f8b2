"""A ``/v1/messages`` body read in one typed pass, for the pass-through to Anthropic-format
upstreams.

Most of what a long agent conversation costs the gateway is reading it: ``orjson.loads``
builds a Python object for every message, block and string of a 200 KB body, the check walks
them, and ``orjson.dumps`` writes them all again for the upstream.  A pass-through needs none
of that content, only its shape checked: msgspec checks it in one pass against the structs
below and keeps every block's values as raw JSON (``msgspec.Raw``: skipped, never decoded),
and re-encoding them is a copy.

The structs are stricter than :meth:`tollway.messages.MessagesRequest.parse`: anything they
accept, it accepts with the same meaning.  Anything else (an unknown field, a block without
a string ``type``, malformed JSON) makes :func:`read` return None and the caller parses the
body the ordinary way, which gives the client its exact 400.  Unknown fields are refused
rather than dropped (``forbid_unknown_fields``), and absent fields stay absent
(``UNSET`` with ``omit_defaults``), so the re-encoded messages are the client's, value for
value.  Keys may come back in another order, and a duplicate key only once: the last, as
every other parse in tollway reads it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, Raw, UnsetType


class _Block(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A content block of any type; its values kept raw, except a tool result's content,
    whose shape the ordinary parse checks too."""

    type: str
    text: Raw | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET
    citations: Raw | UnsetType = UNSET
    source: Raw | UnsetType = UNSET
    title: Raw | UnsetType = UNSET
    context: Raw | UnsetType = UNSET
    id: Raw | UnsetType = UNSET
    name: Raw | UnsetType = UNSET
    input: Raw | UnsetType = UNSET
    tool_use_id: Raw | UnsetType = UNSET
    is_error: Raw | UnsetType = UNSET
    thinking: Raw | UnsetType = UNSET
    signature: Raw | UnsetType = UNSET
    data: Raw | UnsetType = UNSET
    content: str | list[_Block] | UnsetType | None = UNSET


class _Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["user", "assistant", "system"]
    content: str | list[_Block]


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """Every top-level field the Messages API (and tollway's routing extensions) takes; all but
    ``messages`` decoded as plain Python values, for the ordinary checks to read."""

    messages: list[_Message]
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
    """The checked ``messages`` of a pass-through body: as JSON for the upstream, and as plain
    dicts, one at a time, for what reads them (the routing view reads two)."""

    __slots__ = ("_messages", "json")

    def __init__(self, messages: list[_Message]) -> None:
        self._messages = messages
        self.json = _ENCODER.encode(messages)

    def __len__(self) -> int:
        return len(self._messages)

    def dicts(self) -> Any:
        """Each message as the ordinary parse reads it, decoded when the iteration reaches it."""
        return (msgspec.json.decode(_ENCODER.encode(message)) for message in self._messages)


def read(raw: bytes) -> tuple[dict[str, Any], Conversation] | None:
    """The top-level fields (``messages`` left out) and the checked conversation; None when
    the body is anything the structs do not describe (the ordinary parse then decides)."""
    try:
        body = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if not raw.isascii():
        # msgspec does not check the UTF-8 of what it skips; the ordinary parse refuses bad UTF-8.
        try:
            raw.decode()
        except UnicodeDecodeError:
            return None
    fields = {name: value for name in _TOP_LEVEL if (value := getattr(body, name)) is not UNSET}
    return fields, Conversation(body.messages)
