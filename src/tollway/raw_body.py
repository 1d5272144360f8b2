"""A request body read for a pass-through without decoding its conversation.

Most of what a long agent conversation costs the gateway is reading it: ``orjson.loads``
builds a Python object for every message, block and string of a 200 KB body, the check walks
them, and ``orjson.dumps`` writes them all again for the upstream.  A pass-through reads none
of that content: its upstream speaks the same format and checks the conversation itself (its
400 reaches the client in the same shape).  So msgspec reads the top-level fields as Python
values and each message or item only as the span of raw JSON it is (``msgspec.Raw``: the
body is still checked to be JSON throughout).  The callers (:mod:`tollway.messages_passthrough`,
:mod:`tollway.responses.passthrough`) decode and check what tollway reads itself, and send
the spans on as they came.

Unknown top-level fields are refused rather than dropped (``forbid_unknown_fields``): the
caller then parses the body the ordinary way.  Keys may reach the upstream in another order,
and a duplicate top-level key only once: the last, as every other parse in tollway reads it.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from msgspec import UNSET, Raw

from tollway.json_body import Spans


def estimate_by_size(route: dict[str, Any], conversation_json: bytes) -> dict[str, Any]:
    """A chat body for a local token estimate of a raw conversation tollway cannot translate
    (the upstream took it): its JSON as one message, so a cut stream is billed by its size."""
    return {**route, "messages": [{"role": "user", "content": conversation_json.decode()}]}


def may_be_worth_reading_raw(raw: bytes) -> bool:
    """False when ``raw`` cannot hold a conversation worth reading raw, found without scanning
    it byte by byte.  Such a conversation has at least three messages or items (see
    :func:`worth_reading_raw`), each an object, so the body holds at least four ``{``: its
    own and one per message (a brace inside a string only adds; a body whose messages are
    not objects is malformed, which the ordinary parse says).  ``bytes.find`` of one byte is
    memchr (a 200 KB prompt in ~2 us), where msgspec's scan, wasted when the reading then
    declines, takes ~100 us: a body of one or two long messages, as ../shared/bench/load.py
    sends, skips it."""
    at = -1
    for _ in range(4):
        at = raw.find(b"{", at + 1)
        if at < 0:
            return False
    return True


def worth_reading_raw(spans: list[Raw]) -> bool:
    """Whether the messages the routing view decodes anyway (the first two, mostly) are the
    smaller part of the conversation: otherwise reading it raw first costs more than reading
    it once as objects (a single 200 KB prompt is decoded either way)."""
    return 2 * sum(map(len, spans[:2])) < sum(map(len, spans))


class RawBodyReader:
    """Reads bodies whose top-level fields are among ``fields`` and whose conversation is the
    list ``conversation`` (``messages``, ``input``)."""

    def __init__(self, conversation: str, fields: tuple[str, ...]) -> None:
        body = msgspec.defstruct("Body", [(conversation, list[Raw]), *((name, Any, UNSET) for name in fields)],
                                 forbid_unknown_fields=True)
        self._decoder = msgspec.json.Decoder(body)
        self._conversation = conversation
        self._fields = fields

    def read(self, raw: bytes) -> tuple[dict[str, Any], Spans] | None:
        """The top-level fields present (the conversation left out) and the conversation's
        spans; None when the body is anything else, or a conversation not worth reading raw
        (the ordinary parse then decides)."""
        if not may_be_worth_reading_raw(raw):
            return None
        try:
            body = self._decoder.decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        spans: list[Raw] = getattr(body, self._conversation)
        if not worth_reading_raw(spans):
            return None
        if not raw.isascii():
            # msgspec does not check the UTF-8 of what it skips; the ordinary parse refuses bad UTF-8.
            try:
                raw.decode()
            except UnicodeDecodeError:
                return None
        fields = {name: value for name in self._fields if (value := getattr(body, name)) is not UNSET}
        try:  # an integer past 64 bits: msgspec reads it, orjson (the upstream's body) can't write it
            orjson.dumps(fields)
        except orjson.JSONEncodeError:
            return None
        return fields, Spans(spans)
