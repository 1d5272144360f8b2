"""A Responses request read once: validated, and mapped to the OpenAI chat body every
adapter takes.

Input items become chat messages (``function_call`` items fold into the assistant turn
they belong to, ``function_call_output`` items become ``tool`` messages); reasoning items
that carry tollway's ``encrypted_content`` are restored as ``reasoning_details`` on the
next assistant turn, but only for the provider that produced them (:meth:`chat_for`).
Function tools pass; ``namespace`` tools (Codex) are flattened into their functions;
``custom`` tools become a function taking one string; built-in tools (web search, file
search, ...) are dropped for translated upstreams and named in :attr:`dropped_tools`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import orjson

from tollway.errors import BadRequest
from tollway.json_body import Spans
from tollway.raw_body import estimate_by_size

# Gateway fields (OpenRouter's) that the chat body carries under the same name.
_ROUTING_FIELDS = ("models", "provider", "session_id")
ENCRYPTED_PREFIX = "tw1."
# reasoning_details "format" of plain reasoning text that an OpenAI-compatible upstream
# (DeepSeek, Kimi, GLM in thinking mode) wants back as the assistant's ``reasoning_content``.
REASONING_CONTENT_FORMAT = "reasoning-content"
# Function parameters of a ``custom`` (freeform) tool once it is a chat function.
_CUSTOM_PARAMETERS = {"type": "object", "properties": {"input": {"type": "string"}}, "required": ["input"]}
_TEXT_PARTS = frozenset({"input_text", "output_text", "text"})
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def _bad(message: str) -> BadRequest:
    return BadRequest(message, code=400)


def encode_reasoning(provider: str, details: list[dict[str, Any]]) -> str:
    """Reasoning details (e.g. Anthropic thinking with its signature) as ``encrypted_content``,
    tagged with the provider that produced them so they go back only there."""
    raw = orjson.dumps({"p": provider, "d": details})
    return ENCRYPTED_PREFIX + base64.urlsafe_b64encode(raw).decode()


def decode_reasoning(value: Any) -> tuple[str, list[dict[str, Any]]] | None:
    """(provider, details) from tollway's ``encrypted_content``; None for anything else."""
    if not isinstance(value, str) or not value.startswith(ENCRYPTED_PREFIX):
        return None
    try:
        obj = orjson.loads(base64.urlsafe_b64decode(value[len(ENCRYPTED_PREFIX):]))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("p"), str) or not isinstance(obj.get("d"), list):
        return None
    return obj["p"], [d for d in obj["d"] if isinstance(d, dict)]


@dataclass(frozen=True, slots=True)
class ToolNames:
    """What the reply needs to know about the client's tools, by function name."""

    namespaces: dict[str, str] = field(default_factory=dict)  # function -> its namespace
    custom: frozenset[str] = frozenset()  # freeform tools: reply with custom_tool_call items


@dataclass(slots=True)
class ResponsesRequest:
    """A Responses request, validated, and its chat equivalent.

    ``route`` is what routing, stickiness, limits and the ledger read: every top-level field
    of the chat translation, but ``messages`` only as far as its first two (all the sticky
    fingerprint reads).  ``chat``, the whole translation, is built on first use (a translated
    attempt, a limited key's prompt bound, a local token estimate) when every input item is a
    plain message (:func:`_plain`), which the translation cannot reject; otherwise at once,
    since translating is what validates the other items.  A pass-through to a
    Responses-native upstream therefore never translates the conversation.

    A request read by :mod:`tollway.responses.passthrough` keeps its items as the raw JSON a
    native upstream is sent (``items_raw``), decoded only if something needs them.
    """

    body: dict[str, Any]
    route: dict[str, Any]
    items: list[dict[str, Any]]  # the whole conversation's input items (history + this turn)
    tools: ToolNames
    dropped_tools: tuple[str, ...]  # built-in tools a translated upstream can't run
    forced_builtin: str | None  # tool_choice forcing a built-in tool
    store: bool = True
    # The stored rows ``history`` was read from (``previous_response_id`` first), and how many of
    # ``items`` are this turn's own: a stored turn keeps only those, linked to the previous.
    chain: tuple[str, ...] = ()
    own_items: int = 0
    plain: bool = False  # every item a message of text (no reasoning or tool items)
    # (chat body, reasoning to restore): (chat message index, provider, reasoning_details)
    # restored only for that provider.  None until first needed.
    translated: tuple[dict[str, Any], tuple[tuple[int, str, list[dict[str, Any]]], ...]] | None = None
    # ``items`` as the raw JSON a Responses-native upstream is sent, or None to write them per
    # call.  Set by :mod:`tollway.responses.passthrough`, whose requests hold no tollway
    # reasoning (it reads none) and whose ``items`` stay empty until something needs them
    # as objects (``raw_items``): then they are decoded, and checked by their translation.
    items_raw: Spans | None = None
    raw_items: bool = False

    @property
    def chat(self) -> dict[str, Any]:
        """The whole request as an OpenAI chat body (translated once, when first needed)."""
        return self._translation()[0]

    @property
    def reasoning(self) -> tuple[tuple[int, str, list[dict[str, Any]]], ...]:
        return self._translation()[1]

    def _translation(self) -> tuple[dict[str, Any], tuple[tuple[int, str, list[dict[str, Any]]], ...]]:
        if self.translated is None:
            if self.raw_items and self.items_raw is not None:
                self.items, self.raw_items = orjson.loads(self.items_raw.json()), False
            messages, reasoning = _messages(self.body.get("instructions"), self.items)
            self.translated = ({**self.route, "messages": messages}, tuple(reasoning))
        return self.translated

    def estimate_body(self) -> dict[str, Any]:
        """What a local token estimate reads: the chat body, or, for raw items whose translation
        fails, :func:`~tollway.raw_body.estimate_by_size`."""
        try:
            return self.chat
        except BadRequest:
            assert self.items_raw is not None  # items parsed as objects were checked whole
            return estimate_by_size(self.route, self.items_raw.json())

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def include_encrypted(self) -> bool:
        include = self.body.get("include")
        return isinstance(include, list) and "reasoning.encrypted_content" in include

    def chat_for(self, provider: str) -> dict[str, Any]:
        """The chat body for one provider: reasoning details only where that provider made them."""
        chat, reasoning = self._translation()
        mine = [(i, d) for i, p, d in reasoning if p == provider]
        if not mine:
            return chat
        messages = list(chat["messages"])
        for index, details in mine:
            if all(d.get("format") == REASONING_CONTENT_FORMAT for d in details):
                text = "".join(str(d.get("text", "")) for d in details)
                messages[index] = {**messages[index], "reasoning_content": text}
            else:
                messages[index] = {**messages[index], "reasoning_details": details}
        return {**chat, "messages": messages}

    @classmethod
    def parse(cls, body: dict[str, Any], history: list[dict[str, Any]] | None = None,
              default_store: bool = True, chain: tuple[str, ...] = (), *,
              translate: bool = False) -> ResponsesRequest:
        """Validate and map; ``history`` is the stored conversation ``previous_response_id`` names
        (read from the stored rows ``chain``).  ``translate``: no endpoint can take the request
        as it is (none is Responses-native), so translate now: translating validates as it
        goes, cheaper than checking first and translating after."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _bad("'model' is required: name a model id such as 'openai/gpt-5'")
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            new_items: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": raw_input}]
        elif isinstance(raw_input, list):
            new_items = raw_input
        else:
            raise _bad("'input' is required: a string or a list of input items")
        check_flags(body)
        items = [*(history or ()), *new_items]
        plain = not translate and _plain(items)
        translated = None
        reasoning: list[tuple[int, str, list[dict[str, Any]]]] = []
        if plain:
            head, _ = _messages(body.get("instructions"), items, head=True)
        else:
            head, reasoning = _messages(body.get("instructions"), items)  # validates the other items
        route, names, dropped, forced = routing_view(body, model, head)
        if not plain:
            translated = (route, tuple(reasoning))  # the whole conversation: the route is the chat body
        return cls(body=body, route=route, items=items, tools=names, dropped_tools=dropped,
                   forced_builtin=forced, store=store_of(body, default_store), chain=chain,
                   own_items=len(new_items), plain=plain, translated=translated)


def check_flags(body: dict[str, Any]) -> None:
    """The top-level fields checked before the items are read (``background``, the flags,
    ``max_output_tokens``)."""
    if body.get("background") is True:
        raise _bad("'background' responses are not supported by tollway; remove it")
    for name in ("stream", "store", "parallel_tool_calls"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise _bad(f"'{name}' must be true or false")
    max_output = body.get("max_output_tokens")
    if max_output is not None and (not isinstance(max_output, int) or isinstance(max_output, bool)
                                   or max_output < 1):
        raise _bad("'max_output_tokens' must be a positive integer")


def routing_view(body: dict[str, Any], model: str, head: list[dict[str, Any]]) -> tuple[
        dict[str, Any], ToolNames, tuple[str, ...], str | None]:
    """The chat translation's top-level fields with ``head`` as its messages; the client's
    tools by name, the built-in tools dropped, and a built-in tool that ``tool_choice`` forces."""
    route: dict[str, Any] = {k: body[k] for k in _ROUTING_FIELDS if k in body}
    route.update(model=model, messages=head)
    for name in ("stream", "temperature", "top_p"):
        if body.get(name) is not None:
            route[name] = body[name]
    max_output = body.get("max_output_tokens")
    if max_output is not None:
        route["max_tokens"] = max_output
    tools, names, dropped = _tools(body.get("tools"))
    forced = _forced_builtin(body.get("tool_choice"))
    if tools:
        route["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"))
        if choice is not None:
            route["tool_choice"] = choice
        if isinstance(body.get("parallel_tool_calls"), bool):
            route["parallel_tool_calls"] = body["parallel_tool_calls"]
    _reasoning_and_format(body, route)
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        route["user"] = user
    return route, names, dropped, forced


def head_messages(instructions: Any, items: Iterable[Any]) -> list[dict[str, Any]]:
    """The chat translation's first two messages, reading ``items`` only as far as they need."""
    return _messages(instructions, items, head=True)[0]


def store_of(body: dict[str, Any], default: bool) -> bool:
    return body["store"] if isinstance(body.get("store"), bool) else default


_MESSAGE_ROLES = frozenset(_ROLES)


def _plain(items: list[Any]) -> bool:
    """Every item a message of a known role whose content is a string or a list of text parts,
    and one of them the user's or the assistant's: nothing the translation rejects.

    Checked over the whole conversation with C-level maps and sets, not a Python step per
    item: this runs on every request of a long agent conversation."""
    try:
        if set(map(type, items)) != {dict}:
            return False
        if set(map(dict.get, items, repeat("type"), repeat("message"))) != {"message"}:
            return False
        roles = set(map(dict.get, items, repeat("role")))
        if not roles <= _MESSAGE_ROLES or not roles & {"user", "assistant"}:
            return False
        contents: list[Any] = list(map(dict.get, items, repeat("content")))
        kinds = set(map(type, contents))
        if not kinds <= {str, list}:
            return False
        if list in kinds:
            parts = list(chain.from_iterable(c for c in contents if type(c) is list) if str in kinds
                         else chain.from_iterable(contents))
            if parts and (set(map(type, parts)) != {dict}
                          or not set(map(dict.get, parts, repeat("type"))) <= _TEXT_PARTS
                          or set(map(type, map(dict.get, parts, repeat("text")))) != {str}):
                return False
    except TypeError:  # an unhashable type or role: not plain (the translation says why)
        return False
    return True


# -- input items -> chat messages ---------------------------------------------------------------


def _text(part: dict[str, Any]) -> str | None:
    value = part.get("text")
    if part.get("type") == "refusal":
        value = part.get("refusal")
    return value if isinstance(value, str) else None


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content as chat content parts (text and images)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or a list of content parts")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            raise _bad(f"{where}.content[{j}] must be a content part object")
        kind = part.get("type") if isinstance(part.get("type"), str) else None
        if kind in {"input_text", "output_text", "text", "refusal", "summary_text"}:
            text = _text(part)
            if text is None:
                raise _bad(f"{where}.content[{j}] ({kind}) needs a string 'text'")
            parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise _bad(f"{where}.content[{j}]: input_image needs 'image_url' (an https or data: URL); "
                           "file_id references are not supported")
            image: dict[str, Any] = {"url": url}
            if isinstance(part.get("detail"), str) and part["detail"] != "auto":
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise _bad(f"{where}.content[{j}]: unsupported content part type {kind!r} "
                       "(use input_text, input_image or output_text)")
    return parts


def _joined(parts: list[dict[str, Any]]) -> str:
    return "".join(p["text"] for p in parts if p.get("type") == "text")


def _output_text(output: Any) -> str:
    """A function_call_output's ``output``: a string, or content parts whose text is joined."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(p.get("text", "") for p in output if isinstance(p, dict) and isinstance(p.get("text"), str))
    return orjson.dumps(output).decode()


def _messages(instructions: Any, items: Iterable[Any], head: bool = False) -> tuple[
        list[dict[str, Any]], list[tuple[int, str, list[dict[str, Any]]]]]:
    """The items as chat messages (and reasoning to restore); with ``head``, only the first two
    messages (translated until a third starts: only the last message is ever extended), so
    ``items`` is read only that far (it may be an iterator that decodes items as it goes)."""
    messages: list[dict[str, Any]] = []
    reasoning: list[tuple[int, str, list[dict[str, Any]]]] = []
    pending: tuple[str, list[dict[str, Any]]] | None = None  # reasoning waiting for its assistant turn
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})

    def assistant() -> dict[str, Any]:
        """The assistant turn to extend: the last message if it is one and has no results after it."""
        nonlocal pending
        if not messages or messages[-1]["role"] != "assistant":
            messages.append({"role": "assistant", "content": None})
        if pending is not None:
            reasoning.append((len(messages) - 1, pending[0], pending[1]))
            pending = None
        return messages[-1]

    for i, item in enumerate(items):
        if head and len(messages) > 2:
            return messages[:2], reasoning
        # The common item of a long conversation, a message of one text part, maps directly.
        if type(item) is dict and item.get("type", "message") == "message":
            content = item.get("content")
            if type(content) is list and len(content) == 1:
                part = content[0]
                kind = part.get("type") if type(part) is dict else None
                content = part.get("text") if type(kind) is str and kind in _TEXT_PARTS else None
            named = item.get("role")
            role = _ROLES.get(named) if type(named) is str else None
            if type(content) is str and role is not None:
                if role != "assistant":
                    messages.append({"role": role, "content": content})
                elif pending is None and (not messages or messages[-1]["role"] != "assistant"):
                    messages.append({"role": "assistant", "content": content})  # what assistant() starts
                else:
                    turn = assistant()
                    turn["content"] = (turn["content"] or "") + content
                continue
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object (a message or another input item)")
        kind = item.get("type", "message")
        if not isinstance(kind, str):
            raise _bad(f"{where}.type must be a string such as 'message' or 'function_call_output'")
        if kind == "message":
            role = _ROLES.get(str(item.get("role")))
            if role is None:
                raise _bad(f"{where}.role must be one of user, assistant, system or developer")
            content = item.get("content")
            if isinstance(content, list) and len(content) == 1 and isinstance(content[0], dict) \
                    and isinstance(content[0].get("text"), str) and str(content[0].get("type")) in _TEXT_PARTS:
                content = content[0]["text"]  # the common case, kept a plain string (cheaper both ways)
            if isinstance(content, str):
                if role == "assistant":
                    turn = assistant()
                    turn["content"] = (turn["content"] or "") + content
                else:
                    messages.append({"role": role, "content": content})
                continue
            parts = _parts(content, where)
            if role == "assistant":
                turn = assistant()
                turn["content"] = (turn["content"] or "") + _joined(parts)
            elif role == "system":
                messages.append({"role": "system", "content": _joined(parts)})
            else:
                messages.append({"role": "user", "content": parts})
        elif kind in {"function_call", "custom_tool_call"}:
            name, call_id = item.get("name"), item.get("call_id")
            if not isinstance(name, str) or not isinstance(call_id, str):
                raise _bad(f"{where} ({kind}) needs string 'name' and 'call_id'")
            arguments = item.get("arguments") if kind == "function_call" else \
                orjson.dumps({"input": str(item.get("input", ""))}).decode()
            turn = assistant()
            turn.setdefault("tool_calls", []).append(
                {"id": call_id, "type": "function",
                 "function": {"name": name, "arguments": arguments if isinstance(arguments, str) else "{}"}})
        elif kind in {"function_call_output", "custom_tool_call_output"}:
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise _bad(f"{where} ({kind}) needs a string 'call_id'")
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _output_text(item.get("output"))})
        elif kind == "reasoning":
            decoded = decode_reasoning(item.get("encrypted_content"))
            if decoded is not None:
                pending = decoded
        elif kind == "item_reference":
            raise _bad(f"{where}: item_reference is not supported; send the item itself or use "
                       "previous_response_id")
        else:
            # Output items of built-in tools (web_search_call, ...) mean nothing to a chat model.
            continue
    if head:
        return messages[:2], reasoning
    if not any(m["role"] in {"user", "assistant", "tool"} for m in messages):
        raise _bad("'input' has no message: send at least one user message")
    return messages, reasoning


# -- tools ------------------------------------------------------------------------------------


def _function(tool: dict[str, Any], where: str) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise _bad(f"{where} needs a string 'name'")
    fn: dict[str, Any] = {"name": name,
                          "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
    if isinstance(tool.get("description"), str):
        fn["description"] = tool["description"]
    if isinstance(tool.get("strict"), bool):
        fn["strict"] = tool["strict"]
    return {"type": "function", "function": fn}


def _custom(tool: dict[str, Any], where: str) -> dict[str, Any]:
    out = _function({**tool, "parameters": _CUSTOM_PARAMETERS}, where)
    out["function"].pop("strict", None)
    return out


def _tools(raw: Any) -> tuple[list[dict[str, Any]], ToolNames, tuple[str, ...]]:
    if raw is None:
        return [], ToolNames(), ()
    if not isinstance(raw, list):
        raise _bad("'tools' must be a list of tool objects")
    tools: list[dict[str, Any]] = []
    namespaces: dict[str, str] = {}
    custom: set[str] = set()
    dropped: list[str] = []
    for i, tool in enumerate(raw):
        where = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or not isinstance(kind, str):
            raise _bad(f"{where} must be an object with a 'type'")
        if kind == "function":
            tools.append(_function(tool, where))
        elif kind == "custom":
            tools.append(_custom(tool, where))
            custom.add(tools[-1]["function"]["name"])
        elif kind == "namespace":
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise _bad(f"{where} (namespace) needs a 'tools' list")
            for j, member in enumerate(inner):
                member_where = f"{where}.tools[{j}]"
                if not isinstance(member, dict):
                    raise _bad(f"{member_where} must be an object")
                mapped = _custom(member, member_where) if member.get("type") == "custom" \
                    else _function(member, member_where)
                name = mapped["function"]["name"]
                if member.get("type") == "custom":
                    custom.add(name)
                namespaces[name] = str(tool.get("name", ""))
                tools.append(mapped)
        elif kind not in dropped:
            dropped.append(kind)
    return tools, ToolNames(namespaces=namespaces, custom=frozenset(custom)), tuple(dropped)


def _forced_builtin(choice: Any) -> str | None:
    if isinstance(choice, dict) and isinstance(choice.get("type"), str) \
            and choice["type"] not in {"function", "custom", "allowed_tools", "auto", "none", "required"}:
        return str(choice["type"])
    return None


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str) and choice in {"auto", "none", "required"}:
        return choice
    if isinstance(choice, dict) and isinstance(choice.get("type"), str) and choice["type"] in {"function", "custom"} \
            and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        mode = choice.get("mode")
        return mode if isinstance(mode, str) and mode in {"auto", "required"} else "auto"
    return None


def _reasoning_and_format(body: dict[str, Any], chat: dict[str, Any]) -> None:
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if isinstance(effort, str) and effort != "none":
        chat["reasoning_effort"] = effort
    text = body.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise _bad("text.format (json_schema) needs a 'schema' object")
        spec: dict[str, Any] = {"name": str(fmt.get("name") or "output"), "schema": fmt["schema"]}
        if isinstance(fmt.get("strict"), bool):
            spec["strict"] = fmt["strict"]
        chat["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        chat["response_format"] = {"type": "json_object"}
