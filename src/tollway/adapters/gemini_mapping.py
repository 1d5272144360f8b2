"""OpenAI chat <-> Gemini ``generateContent``: requests, responses, stream chunks, usage.

Gemini's ``promptTokenCount`` already includes ``cachedContentTokenCount``; its
``candidatesTokenCount`` excludes ``thoughtsTokenCount``, which OpenAI counts inside
``completion_tokens`` (as ``reasoning_tokens``).  :func:`usage_from_gemini` converts.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.adapters.anthropic_mapping import split_data_url
from tollway.adapters.base import Target
from tollway.errors import BadRequest
from tollway.ledger.bounds import token_count
from tollway.metering import Usage

FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter",
          "RECITATION": "content_filter", "BLOCKLIST": "content_filter",
          "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
          "IMAGE_SAFETY": "content_filter", "LANGUAGE": "stop", "OTHER": "stop",
          "MALFORMED_FUNCTION_CALL": "error", "UNEXPECTED_TOOL_CALL": "error"}
_EFFORT_BUDGET = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
_MIME_BY_SUFFIX = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                   ".webp": "image/webp", ".gif": "image/gif", ".pdf": "application/pdf"}

# reasoning_details "format" of Gemini thought signatures (OpenRouter's name).
SIGNATURE_FORMAT = "google-gemini-v1"


def _count(value: Any) -> int:
    """A usage count, bounded where it enters (see :func:`tollway.ledger.bounds.token_count`)."""
    return token_count(value) if isinstance(value, int) else 0


def usage_from_gemini(meta: dict[str, Any] | None) -> Usage | None:
    """``usageMetadata`` -> OpenAI convention (completion includes thinking tokens)."""
    if not isinstance(meta, dict):
        return None
    prompt = _count(meta.get("promptTokenCount")) + _count(meta.get("toolUsePromptTokenCount"))
    thoughts = _count(meta.get("thoughtsTokenCount"))
    completion = _count(meta.get("candidatesTokenCount")) + thoughts
    cached = min(_count(meta.get("cachedContentTokenCount")), prompt)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached,
                 reasoning_tokens=thoughts)


# -- requests ---------------------------------------------------------------------------------


def _image_part(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise BadRequest("an image_url content part needs image_url.url (an https or data: URL)", code=400)
    inline = split_data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    path = url.split("?", 1)[0].lower()
    mime = next((m for suffix, m in _MIME_BY_SUFFIX.items() if path.endswith(suffix)), "image/jpeg")
    return {"fileData": {"mimeType": mime, "fileUri": url}}


def _parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content if isinstance(content, list) else ():
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append({"text": part["text"]})
        elif part.get("type") == "image_url":
            parts.append(_image_part(part))
    return parts


def _function_response(content: Any) -> dict[str, Any]:
    """A tool result as Gemini wants it: a JSON object (plain text is wrapped)."""
    text = content if isinstance(content, str) else "".join(
        p.get("text", "") for p in content or () if isinstance(p, dict) and isinstance(p.get("text"), str))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"content": text}
    return value if isinstance(value, dict) else {"content": value}


def _contents(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for the results that follow

    def append(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for message in messages:
        role = message.get("role")
        if role in {"system", "developer"}:
            system.extend(_parts(message.get("content")))
        elif role == "user":
            append("user", _parts(message.get("content")))
        elif role == "assistant":
            parts = _parts(message.get("content"))
            signatures = _signatures(message.get("reasoning_details"))
            if None in signatures and parts:
                parts[0]["thoughtSignature"] = signatures[None]
            for call in message.get("tool_calls") or ():
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict):
                    continue
                name = str(fn.get("name", ""))
                names[str(call.get("id", ""))] = name
                args = fn.get("arguments")
                try:
                    parsed = orjson.loads(args) if isinstance(args, str) and args.strip() else {}
                except orjson.JSONDecodeError:
                    raise BadRequest("a tool call's function.arguments must be a JSON object string",
                                     code=400) from None
                fcall: dict[str, Any] = {"name": name, "args": parsed}
                if call.get("id"):
                    fcall["id"] = call["id"]
                part: dict[str, Any] = {"functionCall": fcall}
                signature = signatures.get(str(call.get("id", "")))
                if signature is not None:
                    part["thoughtSignature"] = signature
                parts.append(part)
            append("model", parts)
        elif role in {"tool", "function"}:
            call_id = str(message.get("tool_call_id") or "")
            name = names.get(call_id) or str(message.get("name") or call_id)
            fresp: dict[str, Any] = {"name": name, "response": _function_response(message.get("content"))}
            if call_id:
                fresp["id"] = call_id
            append("user", [{"functionResponse": fresp}])
    return system, contents


def _signatures(details: Any) -> dict[str | None, str]:
    """Gemini thought signatures kept in ``reasoning_details``, by the tool call they sign
    (None: the turn's first part)."""
    out: dict[str | None, str] = {}
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("format") == SIGNATURE_FORMAT \
                and isinstance(detail.get("data"), str):
            key = detail.get("id")
            out[key if isinstance(key, str) and key else None] = detail["data"]
    return out


def signature_detail(part: dict[str, Any], call_id: str | None) -> dict[str, Any] | None:
    """A part's ``thoughtSignature`` as a reasoning detail (OpenRouter's shape): Gemini wants it
    back on the same part in later turns, or refuses the function call history."""
    signature = part.get("thoughtSignature")
    if not isinstance(signature, str) or not signature:
        return None
    return {"type": "reasoning.encrypted", "data": signature, "format": SIGNATURE_FORMAT, "id": call_id}


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"functionCallingConfig": {"mode": "ANY",
                                          "allowedFunctionNames": [choice["function"].get("name", "")]}}
    return None


def _thinking(body: dict[str, Any]) -> dict[str, Any] | None:
    reasoning = body.get("reasoning")
    effort = body.get("reasoning_effort")
    include = True
    budget: int | None = None
    if isinstance(reasoning, dict):
        if reasoning.get("enabled") is False or reasoning.get("effort") == "none":
            return {"thinkingBudget": 0}
        include = reasoning.get("exclude") is not True
        if isinstance(reasoning.get("max_tokens"), int):
            budget = reasoning["max_tokens"]
        effort = reasoning.get("effort", effort)
        if budget is None and effort is None:
            budget = -1  # Gemini's "dynamic" budget
    if effort == "none":
        return {"thinkingBudget": 0}
    if budget is None and isinstance(effort, str):
        budget = _EFFORT_BUDGET.get(effort)
    if budget is None:
        return None
    return {"thinkingBudget": budget, "includeThoughts": include}


def to_gemini_request(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI chat body as a ``GenerateContentRequest``."""
    system, contents = _contents(body["messages"])
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config: dict[str, Any] = {}
    for ours, theirs in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"),
                         ("seed", "seed"), ("presence_penalty", "presencePenalty"),
                         ("frequency_penalty", "frequencyPenalty")):
        if isinstance(body.get(ours), int | float) and not isinstance(body.get(ours), bool):
            config[theirs] = body[ours]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(max_tokens, int):
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if isinstance(stop, str):
        config["stopSequences"] = [stop]
    elif isinstance(stop, list) and stop:
        config["stopSequences"] = [s for s in stop if isinstance(s, str)]
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in {"json_object", "json_schema"}:
        config["responseMimeType"] = "application/json"
        spec = fmt.get("json_schema")
        if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
            config["responseJsonSchema"] = spec["schema"]
    thinking = _thinking(body)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        out["generationConfig"] = config
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        declarations = []
        for tool in tools:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict):
                continue
            decl: dict[str, Any] = {"name": fn.get("name", "")}
            if fn.get("description"):
                decl["description"] = fn["description"]
            if isinstance(fn.get("parameters"), dict):
                decl["parametersJsonSchema"] = fn["parameters"]
            declarations.append(decl)
        out["tools"] = [{"functionDeclarations": declarations}]
        config_choice = _tool_config(body.get("tool_choice"))
        if config_choice is not None:
            out["toolConfig"] = config_choice
    return out


# -- responses ---------------------------------------------------------------------------------


def finish_of(native: str | None, has_calls: bool) -> str | None:
    if native is None or native == "FINISH_REASON_UNSPECIFIED":
        return None
    finish = FINISH.get(native, "stop")
    return "tool_calls" if has_calls and finish == "stop" else finish


def tool_call(part: dict[str, Any], index: int, generation_id: str) -> dict[str, Any]:
    """A ``functionCall`` part as an OpenAI tool call (Gemini sends the arguments whole)."""
    fc = part["functionCall"]
    call_id = fc.get("id") if isinstance(fc.get("id"), str) and fc.get("id") else \
        f"call_{generation_id[-8:]}_{index}"
    return {"id": call_id, "type": "function",
            "function": {"name": str(fc.get("name", "")), "arguments": orjson.dumps(fc.get("args") or {}).decode()}}


def candidate_of(obj: dict[str, Any]) -> dict[str, Any]:
    candidates = obj.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else None
    return first if isinstance(first, dict) else {}


def parts_of(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def to_openai_completion(obj: dict[str, Any], generation_id: str) -> tuple[dict[str, Any], str | None]:
    """A ``GenerateContentResponse`` as a ``chat.completion``; and Gemini's finish reason."""
    candidate = candidate_of(obj)
    text: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for part in parts_of(candidate):
        call_id: str | None = None
        if "functionCall" in part and isinstance(part["functionCall"], dict):
            calls.append(tool_call(part, len(calls), generation_id))
            call_id = calls[-1]["id"]
        elif isinstance(part.get("text"), str):
            (reasoning if part.get("thought") is True else text).append(part["text"])
        detail = signature_detail(part, call_id)
        if detail is not None:
            details.append(detail)
    native = candidate.get("finishReason") if isinstance(candidate.get("finishReason"), str) else None
    if native is None and not candidate and isinstance(obj.get("promptFeedback"), dict):
        native = obj["promptFeedback"].get("blockReason") and "SAFETY"  # the prompt itself was blocked
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                               "refusal": None}
    if reasoning:
        message["reasoning"] = "".join(reasoning)
    if details:
        message["reasoning_details"] = details
    if calls:
        message["tool_calls"] = calls
    completion = {"object": "chat.completion", "choices": [{
        "index": 0, "message": message, "logprobs": None,
        "finish_reason": finish_of(native, bool(calls)), "native_finish_reason": native}]}
    return completion, native
