"""What a limited key's request is allowed to make an upstream produce.

A credit limit is a hard cap only if what tollway reserves is what it lets the upstream
produce.  Two numbers make the reservation, and both are bounds, not estimates:

**The prompt bound** (:func:`prompt_bound`).  Byte-level BPE tokenizers (OpenAI's
``o200k``/``cl100k``, Llama 3, Qwen, DeepSeek, Kimi...) and SentencePiece with byte
fallback (Gemini, Mistral) never make a token out of less than one byte of UTF-8 text,
so the text's UTF-8 length bounds its token count.  To it we add what the chat template
wraps around the text:

* :data:`REQUEST_OVERHEAD` tokens per request (priming the assistant turn is 3; 64 also
  covers upstreams, stubs and benchmarks that bill a quarter of the request's JSON bytes,
  model name and options included);
* :data:`MESSAGE_OVERHEAD` per message (role markers, separators; OpenAI documents 3-4);
* structured fields (tool definitions, tool calls, ``response_format``) at the length of
  their ``json.dumps`` text, which is how templates render them, plus
  :data:`TOOL_OVERHEAD` per tool definition and :data:`TOOLS_PROMPT_OVERHEAD` once when
  tools are present (Anthropic's tool-use system prompt is ~350 tokens);
* per image :data:`IMAGE_BOUND` tokens (providers resize images: OpenAI's tiles come to
  at most ~1,500 tokens, its patch-based models ~2,700, Anthropic ~1,600, Gemini 258 a
  tile); inline audio, video and files count the length of their base64 data (far more
  bytes than tokens); a file named only by reference (an id, a URL to a document) has no
  bound we can see: it counts as :data:`UNSEEN_PART`, i.e. the model's whole context.

Every prompt is also bounded by the endpoint's ``context_length`` when the catalog knows
it (the upstream refuses longer prompts).

**The output cap** (:func:`requested_output` and :func:`cap_output`).  The larger of
``max_tokens`` and ``max_completion_tokens`` is what the client may get, times ``n``
choices.  The cap tollway reserves is sent upstream in every output field the request
uses (or ``max_tokens`` when it used none), so the upstream cannot produce more than was
reserved.  The Responses API (``max_output_tokens``) and the Anthropic Messages API
(``max_tokens``) pass their own field names.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from tollway.errors import BadRequest

CHAT_OUTPUT_FIELDS = ("max_tokens", "max_completion_tokens")
NO_OUTPUT: tuple[str, ...] = ()  # embeddings: the prompt is all there is
MESSAGES_OUTPUT_FIELDS = ("max_tokens",)
RESPONSES_OUTPUT_FIELDS = ("max_output_tokens",)

REQUEST_OVERHEAD = 64
MESSAGE_OVERHEAD = 8
TOOL_OVERHEAD = 32
TOOLS_PROMPT_OVERHEAD = 512
IMAGE_BOUND = 3_000
UNSEEN_PART = 10_000_000  # no visible bound: the endpoint's context length decides

# Parts of a message whose strings are not prompt text (media data, references).
_IMAGE_KEYS = frozenset({"image_url", "image"})
_INLINE_MEDIA_KEYS = frozenset({"input_audio", "video_url", "file", "document", "source"})


def _utf8(text: str) -> int:
    # ASCII text (most prompts) is its own UTF-8: its length, without copying 200 KB to count it.
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _text_bytes(value: Any) -> int:
    """UTF-8 bytes of every string in a JSON value (keys included: a safe over-count)."""
    if isinstance(value, str):
        return _utf8(value)
    if isinstance(value, dict):
        return sum(_utf8(str(k)) + _text_bytes(v) for k, v in value.items())
    if isinstance(value, list):
        return sum(_text_bytes(v) for v in value)
    if value is None or isinstance(value, bool):
        return 0
    return len(str(value))


def _json_bytes(value: Any) -> int:
    """Bytes of a value as chat templates render structured fields (``json.dumps``, spaces
    and ``\\uXXXX`` escapes included): never fewer than its UTF-8 text."""
    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        return _text_bytes(value) * 6


def _part_bound(part: Any) -> int:
    """Tokens one content part can cost: text bytes, or a media part's bound."""
    if not isinstance(part, dict):
        return _json_bytes(part)
    if any(k in part for k in _IMAGE_KEYS) or part.get("type") in ("image", "image_url", "input_image"):
        return IMAGE_BOUND
    media = next((part[k] for k in _INLINE_MEDIA_KEYS if k in part), None)
    if media is not None or part.get("type") in ("input_audio", "file", "input_file", "document", "video"):
        data = _inline_data(media if media is not None else part)
        return max(IMAGE_BOUND, len(data)) if data is not None else UNSEEN_PART
    return _text_bytes(part)


def _inline_data(value: Any) -> str | None:
    """The base64 payload of an inline media part, if it carries one."""
    if isinstance(value, dict):
        for name in ("data", "file_data"):
            if isinstance(value.get(name), str):
                return str(value[name])
        for inner in value.values():
            found = _inline_data(inner)
            if found is not None:
                return found
        return None
    if isinstance(value, str) and value.startswith("data:"):
        return value
    return None


def _message_bound(message: Any) -> int:
    """A chat message or a Responses ``input`` item: its text, parts and structured fields."""
    total = MESSAGE_OVERHEAD
    if isinstance(message, str):
        return total + _utf8(message)
    if not isinstance(message, dict):
        return total + _json_bytes(message)
    for name, value in message.items():
        if name == "content" and isinstance(value, list):
            total += sum(_part_bound(p) for p in value)
        elif isinstance(value, str):
            total += _utf8(value)  # content, role, name: rendered as they are
        else:
            total += _json_bytes(value)  # tool calls and the like: rendered as JSON
    return total


def prompt_bound(body: dict[str, Any]) -> int:
    """Tokens the prompt cannot exceed (see the module docstring), for a chat body
    (``messages``) or a Responses body (``input``, ``instructions``)."""
    total = REQUEST_OVERHEAD
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else ():
        total += _message_bound(message)
    items = body.get("input")
    for item in [items] if isinstance(items, str) else items if isinstance(items, list) else ():
        total += _part_bound(item) if isinstance(item, dict) and "role" not in item and "type" in item \
            and item["type"] in ("input_image", "input_file") else _message_bound(item)
    if isinstance(body.get("instructions"), str):
        total += _message_bound(body["instructions"])
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        total += TOOLS_PROMPT_OVERHEAD + len(tools) * TOOL_OVERHEAD + _json_bytes(tools)
    elif tools is not None:
        total += _json_bytes(tools)
    # Fields a template renders into the prompt: structured-output schemas, tool choice.
    for name in ("response_format", "tool_choice", "functions", "prediction", "text"):
        if name in body:
            total += _json_bytes(body[name])
    # Upstreams that bill a quarter of the request's JSON bytes (the benchmark's, stubs) count
    # every field, including ones no template renders (a 300-byte session_id, unknown
    # options) that the sum above ignores; 64 bytes cover what the gateway adds on the way
    # (stream_options, a lowered max_tokens).
    return max(total, (_body_bytes(body) + 64) // 4)


def _body_bytes(body: dict[str, Any]) -> int:
    try:
        return len(orjson.dumps(body))
    except (TypeError, orjson.JSONEncodeError):  # e.g. an integer past 64 bits
        return len(json.dumps(body, default=str).encode("utf-8", "replace"))


def input_bound(body: dict[str, Any]) -> int:
    """Tokens an embeddings ``input`` cannot exceed: text bytes, token ids one each."""
    value = body.get("input")
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    total = 0
    for item in items:
        if isinstance(item, str):
            total += _utf8(item) + 2  # start/end markers some embedders add
        elif isinstance(item, list):
            total += len(item)
        else:
            total += 1
    return total


def requested_output(body: dict[str, Any], fields: tuple[str, ...] = CHAT_OUTPUT_FIELDS) -> int | None:
    """The most output tokens the request asks for: the larger of its output fields."""
    asked = [v for f in fields if isinstance(v := body.get(f), int) and not isinstance(v, bool) and v > 0]
    return max(asked) if asked else None


def choices(body: dict[str, Any]) -> int:
    """How many completions the request asks for (``n``), each up to the output cap.

    Anything but a positive integer is refused: an upstream that coerces ``"50"`` would
    otherwise produce fifty completions on a reservation for one.
    """
    n = body.get("n")
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise BadRequest("'n' must be a positive integer (the number of completions)", code=400)
    return n


def cap_output(body: dict[str, Any], cap: int, fields: tuple[str, ...] = CHAT_OUTPUT_FIELDS) -> None:
    """Send at most ``cap`` output tokens upstream: the one capping rule for every API.

    Every output field the body uses is lowered to ``cap`` (never raised); a body that
    uses none gets ``fields[0]`` set to ``cap``.  The body is changed in place (it is the
    request's own parsed copy).
    """
    present = [f for f in fields if f in body and body[f] is not None]
    for name in present:
        value = body[name]
        if not isinstance(value, int) or isinstance(value, bool) or value > cap:
            body[name] = cap
    if not present:
        body[fields[0]] = cap
