"""The ``response`` object and its output items, shared by the complete and streamed paths
(the event writer builds its ``done`` items with the same functions, so they can't drift).
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson

from tollway.metering import Usage, nano_to_usd
from tollway.responses.request import REASONING_CONTENT_FORMAT, ResponsesRequest, encode_reasoning

# chat finish_reason -> why a response is incomplete (None: it completed).
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_item_id(prefix: str) -> str:
    # Item ids only need to be unique within a conversation; the interpreter's PRNG (seeded
    # from os.urandom) avoids a syscall per item, as generation ids do.
    return f"{prefix}_{random.getrandbits(96):024x}"


def usage_doc(usage: Usage, cost_nano: int) -> dict[str, Any]:
    """Responses usage (input/output naming) with tollway's cost, as chat's usage has it."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens,
                                 "cache_write_tokens": usage.cache_write_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
        "cost": nano_to_usd(cost_nano),
        "tollway": {"cost_nanousd": cost_nano, "estimated": usage.estimated},
    }


def reasoning_item(item_id: str, text: str, provider: str, details: list[dict[str, Any]],
                   text_field: str | None = None) -> dict[str, Any]:
    """The reasoning the upstream showed, as a summary; what must go back to it as
    ``encrypted_content`` (signed details such as Anthropic thinking signatures, or the
    ``reasoning_content`` DeepSeek/Kimi-style APIs want back in a tool loop), whether or not
    the client asked for it: a client that sends the item back verbatim then keeps it."""
    item: dict[str, Any] = {"type": "reasoning", "id": item_id,
                            "summary": [{"type": "summary_text", "text": text}] if text else []}
    if not details and text and text_field == "reasoning_content":
        details = [{"type": "reasoning.text", "text": text, "format": REASONING_CONTENT_FORMAT}]
    if details:
        item["encrypted_content"] = encode_reasoning(provider, details)
    return item


def message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" \
        else []
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def call_item(request: ResponsesRequest, item_id: str, call_id: str, name: str, arguments: str,
              status: str = "completed") -> dict[str, Any]:
    """A function call, or a ``custom_tool_call`` for a freeform tool (its ``input`` unwrapped)."""
    if name in request.tools.custom:
        try:
            parsed = orjson.loads(arguments) if arguments else {}
        except orjson.JSONDecodeError:
            parsed = {"input": arguments}
        text = parsed.get("input") if isinstance(parsed, dict) else None
        return {"type": "custom_tool_call", "id": item_id, "call_id": call_id, "name": name,
                "input": text if isinstance(text, str) else arguments, "status": status}
    item: dict[str, Any] = {"type": "function_call", "id": item_id, "call_id": call_id, "name": name,
                            "arguments": arguments, "status": status}
    namespace = request.tools.namespaces.get(name)
    if namespace:
        item["namespace"] = namespace
    return item


def response_object(request: ResponsesRequest, response_id: str, model: str, created_at: int,
                    output: list[dict[str, Any]], *, status: str, usage: dict[str, Any] | None,
                    finish_reason: str | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``response`` object: the request's settings echoed, as OpenAI does."""
    body = request.body
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    assert isinstance(text, dict)
    reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
    incomplete = _INCOMPLETE.get(finish_reason or "")
    if status == "completed" and incomplete:
        status = "incomplete"
    return {
        "id": response_id, "object": "response", "created_at": created_at, "status": status,
        "completed_at": int(time.time()) if status == "completed" else None,
        "error": error, "incomplete_details": {"reason": incomplete} if status == "incomplete" else None,
        "instructions": body.get("instructions") if isinstance(body.get("instructions"), str) else None,
        "max_output_tokens": body.get("max_output_tokens"), "model": model, "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
        if reasoning else None,
        "store": request.store, "temperature": body.get("temperature", 1.0),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"), "tools": [_echoed_tool(t) for t in body.get("tools") or ()],
        "top_p": body.get("top_p", 1.0), "truncation": "disabled",
        **({"usage": usage} if usage is not None else {}),
        "metadata": body.get("metadata") if isinstance(body.get("metadata"), dict) else {},
        **({"prompt_cache_key": body["prompt_cache_key"]} if isinstance(body.get("prompt_cache_key"), str)
           else {}),
    }


def _echoed_tool(tool: Any) -> Any:
    """A function tool as OpenAI echoes it (``strict`` and ``parameters`` always present)."""
    if isinstance(tool, dict) and tool.get("type") == "function":
        return {**tool, "strict": tool.get("strict"), "parameters": tool.get("parameters")}
    return tool


def from_completion(request: ResponsesRequest, response_id: str, created_at: int, payload: dict[str, Any],
                    provider: str, usage: dict[str, Any]) -> dict[str, Any]:
    """A ``chat.completion`` (any upstream, already translated) as a completed ``response``."""
    choices = payload.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    assert isinstance(message, dict)
    output: list[dict[str, Any]] = []
    text_field = "reasoning" if message.get("reasoning") else "reasoning_content"
    text = message.get(text_field)
    details = [d for d in message.get("reasoning_details") or () if isinstance(d, dict)]
    if (isinstance(text, str) and text) or details:
        output.append(reasoning_item(new_item_id("rs"), text if isinstance(text, str) else "", provider,
                                     details, text_field))
    if isinstance(message.get("content"), str) and message["content"]:
        output.append(message_item(new_item_id("msg"), message["content"]))
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            arguments = fn.get("arguments")
            output.append(call_item(request, new_item_id("fc"), str(call.get("id") or new_item_id("call")),
                                    str(fn.get("name", "")), arguments if isinstance(arguments, str) else "{}"))
    return response_object(request, response_id, str(payload.get("model")), created_at, output,
                           status="completed", usage=usage, finish_reason=choice.get("finish_reason"))
