"""OpenAI chat <-> Anthropic Messages: requests, responses and stream events.

Shared by :class:`tollway.adapters.anthropic.AnthropicAdapter` (``complete()`` and
``stream()`` use the same helpers, so they cannot drift) and by the ``/v1/messages``
ingress (``tollway.messages``), which needs the same usage and stop-reason tables the
other way round.

Anthropic counts ``input_tokens`` *excluding* cache reads and cache writes; OpenAI's
``prompt_tokens`` includes both.  :func:`usage_from_anthropic` and
:func:`anthropic_usage` are the only places that convert.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from tollway.adapters.base import Target
from tollway.errors import BadRequest
from tollway.ledger.bounds import token_count
from tollway.metering import Usage

ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024

# Anthropic stop_reason -> OpenAI finish_reason.
STOP_TO_FINISH = {
    "end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
    "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter",
}
# OpenAI finish_reason -> Anthropic stop_reason (the /v1/messages ingress).
FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                  "function_call": "tool_use", "content_filter": "refusal", "error": "end_turn"}
# reasoning_details "format" of Anthropic thinking (OpenRouter's name): signed blocks that
# must go back to Anthropic verbatim in later turns.
THINKING_FORMAT = "anthropic-claude-v1"
# OpenRouter's effort -> share of max_tokens spent thinking.
_EFFORT_RATIO = {"minimal": 0.1, "low": 0.2, "medium": 0.5, "high": 0.8, "xhigh": 0.9}


# -- usage ------------------------------------------------------------------------------


def _count(value: Any) -> int:
    """A usage count, bounded where it enters (see :func:`tollway.ledger.bounds.token_count`)."""
    return token_count(value) if isinstance(value, int) else 0


def usage_from_anthropic(usage: dict[str, Any] | None) -> Usage | None:
    """Anthropic usage -> OpenAI convention: prompt = input + cache reads + cache writes."""
    if not isinstance(usage, dict):
        return None
    fresh = _count(usage.get("input_tokens"))
    read = _count(usage.get("cache_read_input_tokens"))
    write = _count(usage.get("cache_creation_input_tokens"))
    output = _count(usage.get("output_tokens"))
    details = usage.get("output_tokens_details")
    thinking = _count(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return Usage(prompt_tokens=fresh + read + write, completion_tokens=output, cached_tokens=read,
                 cache_write_tokens=write, reasoning_tokens=min(thinking, output))


def anthropic_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI-convention usage -> Anthropic's (input excludes cache reads and writes)."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    writes = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
    out: dict[str, Any] = {"input_tokens": usage.prompt_tokens - cached - writes,
                           "output_tokens": usage.completion_tokens,
                           "cache_creation_input_tokens": writes, "cache_read_input_tokens": cached}
    if usage.reasoning_tokens:
        out["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
    return out


# -- requests: OpenAI -> Anthropic ----------------------------------------------------------


def split_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` -> (media type, base64 data); None if not a base64 data URL."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    try:
        base64.b64decode(data[:64] + "=" * (-len(data[:64]) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None
    return head[: -len(";base64")] or "application/octet-stream", data


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise BadRequest("an image_url content part needs image_url.url (an https or data: URL)", code=400)
    inline = split_data_url(url)
    if inline is not None:
        source: dict[str, Any] = {"type": "base64", "media_type": inline[0], "data": inline[1]}
    else:
        source = {"type": "url", "url": url}
    return {"type": "image", "source": source}


def _content_blocks(content: Any, cache_control: Any = None) -> list[dict[str, Any]]:
    """An OpenAI message content (string or parts) as Anthropic content blocks."""
    blocks: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text" and isinstance(part.get("text"), str):
                block: dict[str, Any] = {"type": "text", "text": part["text"]}
            elif kind == "image_url":
                block = _image_block(part)
            elif kind in {"image", "document", "tool_result", "tool_use"}:
                block = dict(part)  # already Anthropic-shaped: pass through
            else:
                continue
            if "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
    if cache_control is not None and blocks:
        blocks[-1]["cache_control"] = cache_control
    return blocks


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _tool_arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BadRequest("a tool call's function.arguments must be a JSON object string", code=400) from None
    return value if isinstance(value, dict) else {"value": value}


def _messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages) with tool results folded into user turns, same roles merged."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []

    def append(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for message in messages:
        role = message.get("role")
        cache = message.get("cache_control")
        if role in {"system", "developer"}:
            system.extend(_content_blocks(message.get("content"), cache))
        elif role == "user":
            append("user", _content_blocks(message.get("content"), cache))
        elif role == "assistant":
            blocks = [*_thinking_blocks(message.get("reasoning_details")),
                      *_content_blocks(message.get("content"), cache)]
            for call in message.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict):
                    continue
                blocks.append({"type": "tool_use", "id": call.get("id") or f"toolu_{len(blocks)}",
                               "name": fn.get("name", ""), "input": _tool_arguments(fn.get("arguments"))})
            append("assistant", blocks)
        elif role in {"tool", "function"}:
            result: dict[str, Any] = {"type": "tool_result",
                                      "tool_use_id": message.get("tool_call_id") or message.get("name", ""),
                                      "content": _text_of(message.get("content"))}
            if cache is not None:
                result["cache_control"] = cache
            append("user", [result])
    return system, out


def _thinking_blocks(details: Any) -> list[dict[str, Any]]:
    """``reasoning_details`` as Anthropic thinking blocks: text fragments up to each signature
    make one block; unsigned thinking is left out (Anthropic refuses it)."""
    blocks: list[dict[str, Any]] = []
    text: list[str] = []
    for detail in details if isinstance(details, list) else ():
        if not isinstance(detail, dict):
            continue
        if detail.get("type") == "reasoning.encrypted" and isinstance(detail.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": detail["data"]})
        elif detail.get("type") == "reasoning.text":
            if isinstance(detail.get("text"), str):
                text.append(detail["text"])
            if isinstance(detail.get("signature"), str) and detail["signature"]:
                blocks.append({"type": "thinking", "thinking": "".join(text), "signature": detail["signature"]})
                text = []
    return blocks


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice == "auto":
        out = {"type": "auto"}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        out = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        out = {"type": "tool", "name": choice["function"].get("name", "")}
    else:
        out = None
    if parallel is False:
        out = {**(out or {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def _thinking(body: dict[str, Any], max_tokens: int) -> dict[str, Any] | None:
    """OpenRouter's ``reasoning`` / OpenAI's ``reasoning_effort`` -> Anthropic ``thinking``."""
    reasoning = body.get("reasoning")
    effort = body.get("reasoning_effort")
    budget: int | None = None
    if isinstance(reasoning, dict):
        if reasoning.get("enabled") is False or reasoning.get("effort") == "none":
            return None
        if isinstance(reasoning.get("max_tokens"), int):
            budget = reasoning["max_tokens"]
        effort = reasoning.get("effort", effort)
        if budget is None and effort is None and reasoning.get("enabled") is True:
            effort = "medium"
    if budget is None and isinstance(effort, str) and effort in _EFFORT_RATIO:
        budget = int(max_tokens * _EFFORT_RATIO[effort])
    if budget is None:
        return None
    budget = max(budget, MIN_THINKING_BUDGET)
    if budget >= max_tokens:
        return None  # Anthropic refuses a budget that leaves no room for the answer
    return {"type": "enabled", "budget_tokens": budget}


def to_anthropic_request(target: Target, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    """An OpenAI chat body as an Anthropic Messages request for ``target``."""
    system, messages = _messages(body["messages"])
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") \
        or target.endpoint.max_output_tokens or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": target.endpoint.model, "max_tokens": max_tokens, "messages": messages}
    if system:
        out["system"] = system
    if stream:
        out["stream"] = True
    thinking = _thinking(body, max_tokens)
    if thinking is not None:
        out["thinking"] = thinking
    else:
        # OpenAI's temperature goes to 2; Anthropic's stops at 1.
        if isinstance(body.get("temperature"), int | float):
            out["temperature"] = min(float(body["temperature"]), 1.0)
        if isinstance(body.get("top_k"), int):
            out["top_k"] = body["top_k"]
    if isinstance(body.get("top_p"), int | float) and thinking is None:
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        out["stop_sequences"] = [s for s in stop if isinstance(s, str)]
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        out["tools"] = [_tool(t) for t in tools if isinstance(t, dict)]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if choice is not None and tools:
        out["tool_choice"] = choice
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if isinstance(schema, dict):
            out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    return out


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function")
    if not isinstance(fn, dict):
        return tool  # an Anthropic-native tool (e.g. a server tool): pass through
    out: dict[str, Any] = {"name": fn.get("name", ""),
                           "input_schema": fn.get("parameters") or {"type": "object", "properties": {}}}
    if fn.get("description"):
        out["description"] = fn["description"]
    if "cache_control" in tool:
        out["cache_control"] = tool["cache_control"]
    return out


# -- responses: Anthropic -> OpenAI ---------------------------------------------------------


def to_openai_message(obj: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """An Anthropic message's content as an OpenAI assistant message; and the native stop reason."""
    text: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in obj.get("content") or ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            text.append(str(block.get("text", "")))
        elif kind == "thinking":
            reasoning.append(str(block.get("thinking", "")))
            details.append({"type": "reasoning.text", "text": str(block.get("thinking", "")),
                            "signature": block.get("signature"), "format": THINKING_FORMAT})
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data"), "format": THINKING_FORMAT})
        elif kind == "tool_use":
            calls.append({"id": block.get("id", ""), "type": "function",
                          "function": {"name": block.get("name", ""),
                                       "arguments": orjson.dumps(block.get("input") or {}).decode()}})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                               "refusal": None}
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    if details:
        message["reasoning_details"] = details
    if calls:
        message["tool_calls"] = calls
    stop = obj.get("stop_reason")
    return message, stop if isinstance(stop, str) else None


def to_openai_completion(obj: dict[str, Any]) -> dict[str, Any]:
    """A whole Anthropic message as a ``chat.completion`` (ids and usage set by the caller)."""
    message, stop = to_openai_message(obj)
    return {"object": "chat.completion", "choices": [{
        "index": 0, "message": message, "logprobs": None,
        "finish_reason": STOP_TO_FINISH.get(stop or "", "stop") if stop else None,
        "native_finish_reason": stop}]}
