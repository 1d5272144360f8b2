"""A Responses request bound for Responses-native upstreams only, read without decoding its
conversation (see :mod:`tollway.messages_passthrough`, the same for ``/v1/messages``).

msgspec reads the top-level fields as Python values (the checks of
:meth:`ResponsesRequest.parse <tollway.responses.request.ResponsesRequest.parse>` run on them
unchanged) and each input item only as the span of raw JSON it is (``msgspec.Raw``: the body
is still checked to be JSON throughout); the items go to the upstream as that JSON, a copy.
The upstream speaks the format and checks the items itself.  What tollway reads is decoded
and checked as the ordinary parse checks it: the top-level fields, and the items the routing
view's first two chat messages are translated from.  The rest is decoded only if something
needs it as objects (a local token estimate), and checked by translating it.

Declined (None: the caller reads the body the ordinary way) whenever the request needs its
items as objects or is anything else: an unknown top-level field (re-encoding would drop
it), ``input`` as a string, ``previous_response_id`` or ``store`` (the items are kept in the
ledger database), fallback ``models`` (a fallback may be translated), tollway's own
encrypted reasoning anywhere in the body (a native upstream is not sent it, so it must be
found and dropped), an integer past 64 bits among the top-level fields (msgspec reads it,
orjson cannot write it; the ordinary parse reads it as a float), or anything the ordinary
parse would reject in what is read here.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import msgspec
import orjson
from msgspec import UNSET, Raw

from tollway.errors import BadRequest
from tollway.messages_passthrough import worth_reading_raw
from tollway.responses.request import (
    ENCRYPTED_PREFIX,
    ResponsesRequest,
    check_flags,
    head_messages,
    routing_view,
    store_of,
)


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    """Every top-level field of a Responses request that tollway knows (Codex's
    ``client_metadata``, tollway's routing preferences), all but ``input`` as Python values."""

    input: list[Raw]
    model: Any = UNSET
    instructions: Any = UNSET
    stream: Any = UNSET
    store: Any = UNSET
    previous_response_id: Any = UNSET
    background: Any = UNSET
    include: Any = UNSET
    max_output_tokens: Any = UNSET
    max_tool_calls: Any = UNSET
    metadata: Any = UNSET
    parallel_tool_calls: Any = UNSET
    prompt: Any = UNSET
    prompt_cache_key: Any = UNSET
    prompt_cache_retention: Any = UNSET
    reasoning: Any = UNSET
    safety_identifier: Any = UNSET
    service_tier: Any = UNSET
    stream_options: Any = UNSET
    temperature: Any = UNSET
    text: Any = UNSET
    tool_choice: Any = UNSET
    tools: Any = UNSET
    top_logprobs: Any = UNSET
    top_p: Any = UNSET
    truncation: Any = UNSET
    user: Any = UNSET
    client_metadata: Any = UNSET
    models: Any = UNSET
    provider: Any = UNSET
    session_id: Any = UNSET


_FIELDS = tuple(name for name in _Body.__struct_fields__ if name != "input")
_DECODER = msgspec.json.Decoder(_Body)
# tollway's encrypted reasoning as it appears in JSON: a string value that starts so.
_OUR_REASONING = b'"' + ENCRYPTED_PREFIX.encode()
# Items whose first key says they are no reasoning item, as Codex and the SDKs write them:
# nothing to look for in them.  Searching the whole body instead costs as much as reading it
# (text is full of the bytes a short needle starts or ends with).
_NOT_REASONING = (b'{"type":"message"', b'{"type":"function_call', b'{"type":"custom_tool_call', b'{"role":')


def _items_json(items: list[Raw]) -> bytes | None:
    """The items as one JSON array, or None if one may hold tollway's own reasoning (which a
    native upstream is not sent: the ordinary read drops it)."""
    spans = list(map(bytes, items))
    if not all(map(bytes.startswith, spans, repeat(_NOT_REASONING))) \
            and any(_OUR_REASONING in span for span in spans if not span.startswith(_NOT_REASONING)):
        return None
    return b"[" + b",".join(spans) + b"]"


def read(raw: bytes, default_store: bool) -> ResponsesRequest | None:
    """``raw`` read with its items kept as raw JSON; None when that does not apply (read it
    with :meth:`ResponsesRequest.parse`)."""
    try:
        decoded = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    body = {name: value for name in _FIELDS if (value := getattr(decoded, name)) is not UNSET}
    if body.get("previous_response_id") is not None or "models" in body or store_of(body, default_store) \
            or not isinstance(body.get("model"), str) or not body["model"]:
        return None
    if not raw.isascii():
        # msgspec does not check the UTF-8 of what it skips; the ordinary parse refuses bad UTF-8.
        try:
            raw.decode()
        except UnicodeDecodeError:
            return None
    items = decoded.input
    if not worth_reading_raw(items):  # no items (the ordinary parse says what to send), or short ones
        return None
    items_json = _items_json(items)
    if items_json is None:
        return None
    try:
        orjson.dumps(body)  # an integer past 64 bits, which orjson (writing the upstream's body) refuses
        check_flags(body)
        head = head_messages(body.get("instructions"), (orjson.loads(memoryview(item)) for item in items))
        route, names, dropped, forced = routing_view(body, body["model"], head)
    except (BadRequest, orjson.JSONEncodeError):
        return None
    return ResponsesRequest(body=body, route=route, items=[], tools=names, dropped_tools=dropped,
                            forced_builtin=forced, store=False, own_items=len(items),
                            items_json=items_json, raw_items=True)
