"""The ``/v1/messages`` ingress: Anthropic's Messages format in and out, any model behind it.

:class:`MessagesRequest` reads an Anthropic request once into both shapes the gateway
needs: the original body (forwarded untouched, model swapped, when the chosen provider
speaks Anthropic) and an OpenAI chat body (for routing, and for every other wire
format).  Replies go back the other way: :func:`to_anthropic_message` for a completion,
:class:`EventWriter` for a stream of OpenAI chunks turned into Anthropic's event sequence
(``message_start``, ``ping``, ``content_block_start``/``delta``/``stop``,
``message_delta`` with usage, ``message_stop``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from tollway import messages_passthrough
from tollway.adapters.anthropic_mapping import FINISH_TO_STOP, anthropic_usage
from tollway.errors import BadRequest, TollwayError
from tollway.metering import Usage
from tollway.raw_body import estimate_by_size
from tollway.streaming import TextDeltaRuns, plain_text_delta, valid_texts

# Anthropic request fields the OpenAI body carries under the same name.
_SAME_NAME = ("model", "temperature", "top_p", "top_k", "stream", "models", "provider", "session_id")


# Roles Anthropic's API accepts inside ``messages``: Claude Code 2.1 sends ``system``
# messages mid-conversation (its environment block), which the API takes as is.
# A tuple, not a set: a role sent as a list or an object must get the 400, and testing an
# unhashable value against a set raises TypeError instead.
_ROLES = ("user", "assistant", "system")
# Request fields with no counterpart in other wire formats: dropped when translating, and
# the drop noted in the ledger record (``extra.dropped``) so an operator can see it.
_DROPPED_WHEN_TRANSLATED = ("context_management", "container", "mcp_servers")


class MessagesRequest:
    """An Anthropic Messages request, validated, read once.

    ``anthropic`` is the body as the client sent it (forwarded, model swapped, to providers
    that speak Anthropic).  ``route`` is what routing, stickiness and the ledger read: every
    top-level field of the OpenAI chat translation, but ``messages`` only as far as the
    first two chat messages (the sticky-session fingerprint reads no more), so a pass-through
    never translates the conversation.  ``openai``, the whole chat body, is built on first
    use: for a translated attempt, a limited key's prompt bound, or a local token estimate.

    A request that can only be passed through may instead be read by
    :meth:`parse_passthrough`, which never decodes the conversation beyond what ``route``
    reads: ``anthropic["messages"]`` is then its raw JSON, and its upstream checks the rest.
    """

    __slots__ = ("_conversation", "_openai", "anthropic", "route")

    def __init__(self, anthropic: dict[str, Any],
                 conversation: messages_passthrough.Conversation | None = None,
                 openai: dict[str, Any] | None = None) -> None:
        self.anthropic = anthropic
        # Read by :meth:`parse_passthrough`: ``anthropic["messages"]`` is then the conversation
        # as raw JSON (:class:`~tollway.json_body.Spans`), checked only as far as the routing
        # view reads it.
        self._conversation = conversation
        self._openai = openai  # the whole chat translation, when :meth:`parse` built it at once
        if openai is not None:  # the routing view is its start: translated once, not twice
            self.route = {**openai, "messages": openai["messages"][:2]}
            return
        head = anthropic if conversation is None else \
            {**anthropic, "messages": _checked(conversation.dicts())}
        self.route = to_openai_request(head, head=True)

    @property
    def openai(self) -> dict[str, Any]:
        """The whole request as an OpenAI chat body (translated once, when first needed); for a
        conversation read raw, checked first (a 400 naming the fix, as :meth:`parse` gives)."""
        if self._openai is None:
            body = self.anthropic
            if self._conversation is not None:
                messages = orjson.loads(self._conversation.json)
                _check_messages(messages)
                body = {**body, "messages": messages}
            self._openai = to_openai_request(body)
        return self._openai

    def estimate_body(self) -> dict[str, Any]:
        """What a local token estimate reads: the chat body, or, for a raw conversation that
        does not pass the check, :func:`~tollway.raw_body.estimate_by_size`."""
        try:
            return self.openai
        except BadRequest:
            assert self._conversation is not None  # a parsed body was checked whole
            return estimate_by_size(self.route, self._conversation.json)

    @property
    def stream(self) -> bool:
        return self.anthropic.get("stream") is True

    @property
    def translation_notes(self) -> dict[str, Any] | None:
        """What translating to another wire format leaves out, for the ledger record."""
        dropped = [name for name in _DROPPED_WHEN_TRANSLATED if self.anthropic.get(name) is not None]
        dropped += [f"tools[{i}]" for i, tool in enumerate(self.anthropic.get("tools") or ())
                    if not _is_function_tool(tool)]
        return {"dropped": dropped} if dropped else None

    @classmethod
    def parse(cls, body: dict[str, Any], *, counting: bool = False, to_chat: bool = False) -> MessagesRequest:
        """Reject only what is malformed (400 naming the fix); every other field is kept.

        ``counting`` is for ``/v1/messages/count_tokens``, which takes no ``max_tokens``.
        ``to_chat``, for a request whose model is served only in OpenAI's chat format: the
        chat translation is built now, in the same pass over the conversation as its check
        (the same checks, the same 400s), instead of in a second pass when the attempt needs it.
        """
        _check_required(body, counting)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty list of {role, content} objects", code=400)
        if to_chat:
            translated = _openai_messages(body, check=True)
            _check_shapes(body)
            return cls(body, openai=to_openai_request(body, messages=translated))
        _check_messages(messages)
        _check_shapes(body)
        return cls(body)

    @classmethod
    def parse_passthrough(cls, raw: bytes) -> MessagesRequest | None:
        """The raw body read for a pass-through (:mod:`tollway.messages_passthrough`: the
        conversation kept as raw JSON, only the messages the routing view reads decoded and
        checked); None when it is anything else, or anything :meth:`parse` would reject on
        what it reads, for :meth:`parse` to read and, if it is malformed, to say why.

        Only for a request that can go nowhere but to an Anthropic-format upstream, which
        checks the rest of the conversation itself; so not with ``models`` (a fallback model
        may be translated, which needs the whole conversation checked)."""
        read = messages_passthrough.read(raw)
        if read is None or "models" in read[0]:
            return None
        fields, conversation = read
        try:
            _check_required(fields, counting=False)
            _check_shapes(fields)
            fields["messages"] = conversation.spans
            return cls(fields, conversation)
        except BadRequest:
            return None


def _check_required(body: dict[str, Any], counting: bool) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("'model' is required: name a model id such as 'anthropic/claude-sonnet-4.5'",
                         code=400)
    max_tokens = body.get("max_tokens")
    if not counting and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise BadRequest("'max_tokens' is required and must be a positive integer", code=400)


def _check_messages(messages: Iterable[Any], first: int = 0) -> None:
    """Each message (numbered from ``first``) has a known role and content of the right shape."""
    roles = _ROLES
    for i, message in enumerate(messages, first):
        # The common message (a known role; text, or blocks that hold no tool result) is
        # checked inline: this loop runs over every message of a long conversation.
        if type(message) is not dict or message.get("role") not in roles:
            raise BadRequest(f"messages[{i}].role must be 'user', 'assistant' or 'system'", code=400)
        content = message.get("content")
        if type(content) is str:
            continue
        if type(content) is not list:
            raise BadRequest(f"messages[{i}].content must be a string or a list of content blocks", code=400)
        for block in content:
            if type(block) is not dict or block.get("type") == "tool_result":
                _check_content(content, f"messages[{i}].content")
                break


def _checked(messages: Iterator[Any]) -> Iterator[Any]:
    """``messages``, each checked as it is reached (the routing view reads only the first)."""
    for i, message in enumerate(messages):
        _check_messages((message,), i)
        yield message


def _check_content(content: Any, where: str) -> None:
    """Content is a string or a list of blocks (objects); a tool_result's content likewise."""
    if content is None or isinstance(content, str):
        return
    if not isinstance(content, list):
        raise BadRequest(f"{where} must be a string or a list of content blocks", code=400)
    for j, block in enumerate(content):
        if not isinstance(block, dict):
            raise BadRequest(f"{where}[{j}] must be a content block object such as "
                             '{"type": "text", "text": "..."}', code=400)
        if block.get("type") == "tool_result":
            _check_content(block.get("content"), f"{where}[{j}].content")


def _check_shapes(body: dict[str, Any]) -> None:
    """The optional top-level fields have the types Anthropic documents."""
    if "system" in body:
        _check_content(body["system"], "system")
    tools = body.get("tools")
    if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
        raise BadRequest("'tools' must be a list of tool objects ({name, description, input_schema})", code=400)
    for name in ("tool_choice", "thinking", "metadata", "output_config"):
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise BadRequest(f"'{name}' must be an object", code=400)
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(x, str) for x in stops)):
        raise BadRequest("'stop_sequences' must be a list of strings", code=400)


# -- request: Anthropic -> OpenAI ------------------------------------------------------------


def _image_url(source: dict[str, Any]) -> str | None:
    if source.get("type") == "base64":
        return f"data:{source.get('media_type', 'image/png')};base64,{source.get('data', '')}"
    if source.get("type") == "url" and isinstance(source.get("url"), str):
        return str(source["url"])
    return None


def _parts(blocks: Any) -> list[dict[str, Any]]:
    """Anthropic text/image blocks as OpenAI content parts (cache_control kept)."""
    if isinstance(blocks, str):
        return [{"type": "text", "text": blocks}]
    parts: list[dict[str, Any]] = []
    for block in blocks if isinstance(blocks, list) else ():
        if not isinstance(block, dict):
            continue
        part: dict[str, Any] | None = None
        if block.get("type") == "text":
            if len(block) == 2 and isinstance(block.get("text"), str):
                # Already an OpenAI text part: shared rather than copied (nothing downstream
                # mutates parts), which keeps long conversations cheap to translate.
                parts.append(block)
                continue
            part = {"type": "text", "text": str(block.get("text", ""))}
        elif block.get("type") == "image" and isinstance(block.get("source"), dict):
            url = _image_url(block["source"])
            part = {"type": "image_url", "image_url": {"url": url}} if url else None
        if part is not None:
            if "cache_control" in block:
                part["cache_control"] = block["cache_control"]
            parts.append(part)
    return parts


def _tool_result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or ()
                   if isinstance(b, dict) and isinstance(b.get("text"), str))


def _openai_messages(body: dict[str, Any], head: bool = False, check: bool = False) -> list[dict[str, Any]]:
    """The conversation as chat messages; with ``head``, only the first two (what the
    translation of the whole conversation starts with: each message maps on its own, so the
    rest is not read).

    With ``check``, each message is checked as :func:`_check_messages` checks it, in the same
    pass (the common message is valid by the shape the fast path tests; any other is checked
    before it is translated), so a request translated at once walks its conversation once."""
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "content": _parts(system)})
    for index, message in enumerate(body["messages"]):
        if head and len(out) >= 2:
            break
        if type(message) is dict:
            content = message.get("content")
            role = message.get("role")
            # The common message of a long conversation, one text block (or a string), maps
            # directly: the block (already an OpenAI text part) and its list are shared.
            if type(content) is list and len(content) == 1:
                block = content[0]
                if type(block) is dict and len(block) == 2 and block.get("type") == "text" \
                        and type(text := block.get("text")) is str:
                    if role == "user":
                        out.append({"role": "user", "content": content})
                        continue
                    if role == "assistant":
                        out.append({"role": "assistant", "content": text or None})
                        continue
            elif type(content) is str and (role == "user" or role == "assistant"):
                out.append({"role": "user", "content": [{"type": "text", "text": content}]} if role == "user"
                           else {"role": "assistant", "content": content or None})
                continue
        if check:
            _check_messages((message,), index)
        content = message.get("content")
        role = message["role"]
        if role == "system":
            # Chat takes system messages anywhere, so a mid-conversation one stays in place.
            parts = _parts(content)
            if parts:
                out.append({"role": "system", "content": parts})
            continue
        if role == "assistant":
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
            calls = [{"id": b.get("id", ""), "type": "function",
                      "function": {"name": b.get("name", ""), "arguments": orjson.dumps(b.get("input") or {}).decode()}}
                     for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"]
            assistant: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                assistant["tool_calls"] = calls
            out.append(assistant)
            continue
        blocks = content if isinstance(content, list) else [{"type": "text", "text": str(content or "")}]
        # OpenAI wants tool results as their own messages, right after the assistant's calls.
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                text = _tool_result_text(block.get("content"))
                if block.get("is_error") is True:
                    text = "Error: " + text
                out.append({"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": text})
        parts = _parts([b for b in blocks if not (isinstance(b, dict) and b.get("type") == "tool_result")])
        if parts:
            out.append({"role": "user", "content": parts})
    return out[:2] if head else out  # one message may have made several (tool results)


def _is_function_tool(tool: Any) -> bool:
    """A client-defined tool the model may call; server tools (web search, code execution)
    and tools deferred until a tool search loads them (``defer_loading``) are not."""
    return isinstance(tool, dict) and "input_schema" in tool and tool.get("defer_loading") is not True


# Anthropic's ``output_config.effort`` levels -> OpenAI's ``reasoning.effort``.
_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "xhigh"}


def _reasoning(thinking: Any, config: Any) -> dict[str, Any]:
    """``thinking`` and ``output_config.effort`` as OpenRouter's ``reasoning`` object."""
    out: dict[str, Any] = {}
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "disabled":
        return out
    if kind == "enabled" and isinstance(thinking, dict):
        out["max_tokens"] = thinking.get("budget_tokens")
    elif kind == "adaptive":
        out["enabled"] = True
    effort = config.get("effort") if isinstance(config, dict) else None
    if isinstance(effort, str) and effort in _EFFORT:
        out.pop("max_tokens", None)  # OpenRouter takes one of effort and max_tokens
        out["effort"] = _EFFORT[effort]
    return out


def to_openai_request(body: dict[str, Any], head: bool = False,
                      messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An Anthropic Messages body as an OpenAI chat body (routing fields kept); with ``head``,
    only its first two messages (see :class:`MessagesRequest`); with ``messages``, those as
    the chat messages (already translated)."""
    out: dict[str, Any] = {k: body[k] for k in _SAME_NAME if k in body}
    out["messages"] = _openai_messages(body, head) if messages is None else messages
    if "max_tokens" in body:  # count_tokens requests have none
        out["max_tokens"] = body["max_tokens"]
    if isinstance(body.get("stop_sequences"), list) and body["stop_sequences"]:
        out["stop"] = body["stop_sequences"]
    tools = [t for t in body.get("tools") or () if _is_function_tool(t)]
    if tools:
        out["tools"] = [{"type": "function", "function": {
            "name": t.get("name", ""), "description": t.get("description", ""),
            "parameters": t["input_schema"]}} for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
        if kind == "tool":
            out["tool_choice"] = {"type": "function", "function": {"name": choice.get("name", "")}}
        elif mapped:
            out["tool_choice"] = mapped
        if choice.get("disable_parallel_tool_use") is True:
            out["parallel_tool_calls"] = False
    reasoning = _reasoning(body.get("thinking"), body.get("output_config"))
    if reasoning:
        out["reasoning"] = reasoning
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["response_format"] = {"type": "json_schema",
                                  "json_schema": {"name": "output", "schema": fmt.get("schema", {})}}
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        out["user"] = metadata["user_id"]
    return out


# -- response: OpenAI -> Anthropic ------------------------------------------------------------


def stop_reason(finish: str | None) -> str | None:
    return FINISH_TO_STOP.get(finish, "end_turn") if finish else None


def _arguments(raw: Any) -> Any:
    if not isinstance(raw, str) or not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_raw": raw}  # a model's malformed JSON, kept rather than lost


def to_anthropic_message(payload: dict[str, Any], usage: Usage) -> dict[str, Any]:
    """A ``chat.completion`` as an Anthropic ``message`` (tollway's id and model kept)."""
    choices = payload.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
    content: list[dict[str, Any]] = []
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    if isinstance(message.get("content"), str) and message["content"]:
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            content.append({"type": "tool_use", "id": call.get("id", ""), "name": fn.get("name", ""),
                            "input": _arguments(fn.get("arguments"))})
    return {"id": payload.get("id"), "type": "message", "role": "assistant", "model": payload.get("model"),
            "content": content, "stop_reason": stop_reason(choice.get("finish_reason")),
            "stop_sequence": None, "usage": anthropic_usage(usage)}


def sse(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def error_event(exc: TollwayError | str) -> bytes:
    """Anthropic's mid-stream ``error`` event."""
    if isinstance(exc, TollwayError):
        return sse("error", exc.to_anthropic())
    return sse("error", {"type": "error", "error": {"type": "api_error", "message": exc}})


# A text delta of the open text block: the block's index, the text as a JSON string.
_TEXT_EVENT = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
               b'"delta":{"type":"text_delta","text":%b}}\n\n')
_TEXT_HEAD, _TEXT_TAIL = _TEXT_EVENT.split(b"%b")
# The events every translated stream sends, as bytes (what ``sse`` would write for them): the
# opening pair (message id and model as JSON strings), a text block's start and any block's
# stop (its index), the last event.
_MESSAGE_START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":%b,"type":"message",'
                  b'"role":"assistant","model":%b,"content":[],"stop_reason":null,"stop_sequence":null,'
                  b'"usage":{"input_tokens":0,"output_tokens":0}}}\n\nevent: ping\ndata: {"type":"ping"}\n\n')
_TEXT_BLOCK_START = (b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,'
                     b'"content_block":{"type":"text","text":""}}\n\n')
_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n'
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class EventWriter:
    """OpenAI chunk events -> Anthropic stream events, one content block at a time."""

    def __init__(self, message_id: str, model: str) -> None:
        self.message_id = message_id
        self.model = model
        self.started = False
        self.block: str | None = None  # "text", "thinking" or "tool_use" while a block is open
        self.index = -1
        self.tools: dict[int, int] = {}  # OpenAI tool_calls index -> Anthropic block index
        self.finish: str | None = None
        self.runs = TextDeltaRuns()

    def start(self) -> bytes:
        self.started = True
        return _MESSAGE_START % (orjson.dumps(self.message_id), orjson.dumps(self.model))

    def feed(self, data: bytes) -> bytes:
        """One run of OpenAI SSE events (no usage chunk, no [DONE]) as Anthropic events.

        Once a plain text delta has shown how the upstream spells one, runs of them become
        their events from the bytes (:meth:`tollway.streaming.TextDeltaRuns.take`: the whole
        run at once); only the other events are parsed.
        """
        if self.block == "text":  # a token per read, as a model streams: no list, no loop
            single = self.runs.single(data)
            if single is not None:
                return b"" if single[0] == b'""' else _TEXT_EVENT % (self.index, single[0])
        out: list[bytes] = [] if self.started else [self.start()]
        at, size = 0, len(data)
        while at < size:
            if self.block == "text" and self.runs.starts(data, at):
                taken = self.runs.take(data, at)
                if taken is None:  # a doubt: event by event from here on
                    self._events(data[at:] if at else data, out)
                    break
                at, texts, _ = taken
                if b'""' in texts:
                    texts = [raw for raw in texts if raw != b'""']  # "" says nothing
                if texts:
                    head = _TEXT_HEAD % self.index
                    out.append(head + (_TEXT_TAIL + head).join(texts) + _TEXT_TAIL)
                continue
            cut = data.find(b"\n\n", at)
            if cut < 0:
                self._event(data[at:], out)
                break
            self._event(data[at:cut], out)
            at = cut + 2
        return b"".join(out)

    def _events(self, data: bytes, out: list[bytes]) -> None:
        """``data``'s events one by one (runs of learnt-spelling deltas still from bytes)."""
        events = data.split(b"\n\n")
        at, count = 0, len(events)
        while at < count:
            if self.block == "text":
                end, texts = self.runs.run(events, at)
                if texts and valid_texts(texts) is not None:
                    index = self.index
                    out.extend(_TEXT_EVENT % (index, raw) for raw in texts if raw != b'""')
                    at = end
                    continue
                for event in events[at:end]:  # a malformed text: the parsing path skips it
                    self._event(event, out)
                at = end
                if not texts:
                    self._event(events[at], out)
                    at += 1
                continue
            self._event(events[at], out)
            at += 1

    def _event(self, event: bytes, out: list[bytes]) -> None:
        if not event.startswith(b"data:"):
            return
        if self.block == "text":
            span = plain_text_delta(event)
            if span is not None:
                raw = event[span[0]:span[1]]
                try:
                    orjson.loads(raw)
                except orjson.JSONDecodeError:
                    return
                self.runs.learn(event, *span)
                if raw != b'""':
                    out.append(_TEXT_EVENT % (self.index, raw))
                return
        try:
            chunk = orjson.loads(event[5:])
        except orjson.JSONDecodeError:
            return
        for choice in chunk.get("choices") or () if isinstance(chunk, dict) else ():
            if isinstance(choice, dict):
                self._choice(choice, out)

    def _open(self, kind: str, block: dict[str, Any] | None, out: list[bytes]) -> None:
        """Open a block of ``kind``: ``block`` is its ``content_block`` (None for a text block,
        whose event is a template)."""
        self._close(out)
        self.index += 1
        self.block = kind
        out.append(_TEXT_BLOCK_START % self.index if block is None else
                   sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                               "content_block": block}))

    def _close(self, out: list[bytes]) -> None:
        if self.block is not None:
            out.append(_BLOCK_STOP % self.index)
            self.block = None

    def _delta(self, index: int, delta: dict[str, Any], out: list[bytes]) -> None:
        out.append(sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))

    def _choice(self, choice: dict[str, Any], out: list[bytes]) -> None:
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            delta = {}
        if "reasoning" in delta or "reasoning_content" in delta:
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                if self.block != "thinking":
                    self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
                self._delta(self.index, {"type": "thinking_delta", "thinking": reasoning}, out)
        text = delta.get("content")
        if text and isinstance(text, str):
            if self.block != "text":
                self._open("text", None, out)
            # Text deltas are most of a stream: their event is assembled from bytes.
            out.append(_TEXT_EVENT % (self.index, orjson.dumps(text)))
        if "tool_calls" not in delta:
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])
            return
        for call in delta["tool_calls"] or ():
            if not isinstance(call, dict):
                continue
            position = call.get("index", 0)
            fn = call.get("function") if isinstance(call.get("function"), dict) else {}
            assert isinstance(fn, dict)
            if position not in self.tools:
                self._open("tool_use", {"type": "tool_use", "id": call.get("id", ""),
                                        "name": fn.get("name", ""), "input": {}}, out)
                self.tools[position] = self.index
            arguments = fn.get("arguments")
            if isinstance(arguments, str) and arguments:
                self._delta(self.tools[position], {"type": "input_json_delta", "partial_json": arguments}, out)
        if choice.get("finish_reason"):
            self.finish = str(choice["finish_reason"])

    def end(self, usage: Usage, finish: str | None) -> bytes:
        """Close the open block; ``message_delta`` (stop reason, cumulative usage); ``message_stop``."""
        out: list[bytes] = [] if self.started else [self.start()]
        self._close(out)
        delta = {"stop_reason": stop_reason(finish or self.finish) or "end_turn", "stop_sequence": None}
        out.append(sse("message_delta", {"type": "message_delta", "delta": delta,
                                         "usage": anthropic_usage(usage)}))
        out.append(_MESSAGE_STOP)
        return b"".join(out)
