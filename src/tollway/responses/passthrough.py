"""A Responses request bound for Responses-native upstreams only, read without decoding its
items (:mod:`tollway.raw_body`; :mod:`tollway.messages_passthrough` is the same for
``/v1/messages``).

The items go to the upstream as the JSON they came as; the upstream speaks the format
and checks them itself.  What tollway reads is decoded and checked as
:meth:`ResponsesRequest.parse <tollway.responses.request.ResponsesRequest.parse>` checks it:
the top-level fields, and the items the routing view's first two chat messages are
translated from.  The rest is decoded only if something needs it as objects (a local token
estimate), and checked by translating it.

Declined (None: the caller reads the body the ordinary way) whenever the request needs its
items as objects or is anything else: what :class:`~tollway.raw_body.RawBodyReader` declines
(an unknown top-level field, ``input`` as a string, items shorter than what routing reads, a
top-level integer past 64 bits), ``previous_response_id`` or ``store`` (the items are kept in
the ledger database), fallback ``models`` (a fallback may be translated), an item that may
hold tollway's own encrypted reasoning (a native upstream is not sent it, so the ordinary
read drops it), or anything the ordinary parse would reject in what is read here.
"""

from __future__ import annotations

from itertools import repeat

import orjson

from tollway.errors import BadRequest
from tollway.json_body import Spans
from tollway.raw_body import RawBodyReader
from tollway.responses.request import (
    ENCRYPTED_PREFIX,
    ResponsesRequest,
    check_flags,
    head_messages,
    routing_view,
    store_of,
)

# Every top-level field of a Responses request that tollway knows (Codex's ``client_metadata``,
# tollway's routing preferences).
_READER = RawBodyReader("input", (
    "model", "instructions", "stream", "store", "previous_response_id", "background", "include",
    "max_output_tokens", "max_tool_calls", "metadata", "parallel_tool_calls", "prompt", "prompt_cache_key",
    "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "stream_options", "temperature",
    "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user", "client_metadata", "models",
    "provider", "session_id"))
# tollway's encrypted reasoning as it appears in JSON: a string value that starts so.
_OUR_REASONING = b'"' + ENCRYPTED_PREFIX.encode()
# Items whose first key says they are no reasoning item, as Codex and the SDKs write them:
# nothing to look for in them.  Searching the whole body instead costs as much as reading it
# (text is full of the bytes a short needle starts or ends with).
_NOT_REASONING = (b'{"type":"message"', b'{"type":"function_call', b'{"type":"custom_tool_call', b'{"role":')


def _holds_our_reasoning(items: Spans) -> bool:
    """Whether an item may hold tollway's own reasoning (which a native upstream is not sent:
    the ordinary read drops it)."""
    spans = list(map(bytes, items))
    return not all(map(bytes.startswith, spans, repeat(_NOT_REASONING))) \
        and any(_OUR_REASONING in span for span in spans if not span.startswith(_NOT_REASONING))


def read(raw: bytes, default_store: bool) -> ResponsesRequest | None:
    """``raw`` read with its items kept as raw JSON; None when that does not apply (read it
    with :meth:`ResponsesRequest.parse`)."""
    read = _READER.read(raw)  # None too when the items are short: no items, say, or one long prompt
    if read is None:
        return None
    body, items = read
    if body.get("previous_response_id") is not None or "models" in body or store_of(body, default_store) \
            or not isinstance(body.get("model"), str) or not body["model"]:
        return None
    if _holds_our_reasoning(items):
        return None
    try:
        check_flags(body)
        head = head_messages(body.get("instructions"), (orjson.loads(memoryview(item)) for item in items))
        route, names, dropped, forced = routing_view(body, body["model"], head)
    except BadRequest:
        return None
    return ResponsesRequest(body=body, route=route, items=[], tools=names, dropped_tools=dropped,
                            forced_builtin=forced, store=False, own_items=len(items),
                            items_raw=items, raw_items=True)
