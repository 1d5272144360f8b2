"""JSON Schemas of tollway's request and response bodies, for ``GET /openapi.json``.

Hand-maintained beside the handlers they describe (``tollway.api.*``): request schemas
state what the handlers accept (types and bounds from ``tollway.api.inputs``), response
schemas the fields clients can rely on.  Objects stay open (``additionalProperties``) where
tollway relays provider fields or passes OpenRouter extensions through.
"""

from __future__ import annotations

from typing import Any

from tollway.api.inputs import MAX_RATE, MAX_USD

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), *, extra: bool = True,
        description: str | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    if not extra:
        schema["additionalProperties"] = False
    if description:
        schema["description"] = description
    return schema


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJ: Schema = {"type": "object"}
USD: Schema = {"anyOf": [{"type": "number", "minimum": 0, "maximum": float(MAX_USD)},
                         {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}],
               "description": f"USD, 0 to {MAX_USD}; a number or a decimal string (exact)"}

_ERROR = obj({"error": obj({
    "message": {"type": "string", "description": "what went wrong and what to change"},
    "type": {"type": "string", "examples": ["invalid_request_error", "service_unavailable"]},
    "code": {"anyOf": [INT, STR]},
    "metadata": {"type": "object", "description": "upstream failures: provider_name, upstream_status, raw, attempts"},
}, ("message", "type", "code"))}, ("error",), description="OpenAI's error shape (OpenRouter's metadata when any)")

_ANTHROPIC_ERROR = obj({"type": {"const": "error"}, "error": obj({"type": STR, "message": STR}, ("type", "message"))},
                       ("type", "error"), description="Anthropic's error shape, on /v1/messages")

_CONTENT_PART = obj({"type": {"type": "string", "examples": ["text", "image_url", "input_audio", "file"]},
                     "text": STR, "image_url": obj({"url": STR, "detail": STR}), "cache_control": ANY_OBJ},
                    ("type",))

_CHAT_MESSAGE = obj({
    "role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
    "content": {"anyOf": [STR, {"type": "array", "items": _CONTENT_PART}, {"type": "null"}]},
    "name": STR, "tool_call_id": STR,
    "tool_calls": {"type": "array", "items": obj({"id": STR, "type": {"const": "function"},
                                                  "function": obj({"name": STR, "arguments": STR})})},
}, ("role",))

_TOOL = obj({"type": {"const": "function"},
             "function": obj({"name": STR, "description": STR, "parameters": ANY_OBJ, "strict": BOOL}, ("name",))},
            ("type", "function"))

_PROVIDER_PREFS = obj({
    "order": {"type": "array", "items": STR}, "allow_fallbacks": BOOL, "require_parameters": BOOL,
    "data_collection": {"enum": ["allow", "deny"]}, "zdr": BOOL,
    "only": {"type": "array", "items": STR}, "ignore": {"type": "array", "items": STR},
    "quantizations": {"type": "array", "items": STR}, "sort": {"anyOf": [STR, ANY_OBJ]},
    "max_price": obj({"prompt": NUM, "completion": NUM, "request": NUM}),
    "preferred_min_throughput": {"anyOf": [NUM, ANY_OBJ]}, "preferred_max_latency": {"anyOf": [NUM, ANY_OBJ]},
}, description="OpenRouter's provider routing preferences; a key's own policies can only be narrowed")

_CHAT_REQUEST = obj({
    "model": {"type": "string", "description": "a model id (author/slug), optionally with :nitro or :floor",
              "examples": ["openai/gpt-4o-mini"]},
    "messages": {"type": "array", "minItems": 1, "items": _CHAT_MESSAGE},
    "models": {"type": "array", "items": STR, "description": "fallback models, tried in order"},
    "max_tokens": {"type": "integer", "minimum": 1}, "max_completion_tokens": {"type": "integer", "minimum": 1},
    "temperature": NUM, "top_p": NUM, "top_k": INT, "seed": INT, "n": {"type": "integer", "minimum": 1},
    "frequency_penalty": NUM, "presence_penalty": NUM,
    "stop": {"anyOf": [STR, {"type": "array", "items": STR}, {"type": "null"}]},
    "stream": BOOL, "stream_options": obj({"include_usage": BOOL}),
    "tools": {"type": "array", "items": _TOOL}, "tool_choice": {"anyOf": [STR, ANY_OBJ]},
    "parallel_tool_calls": BOOL, "response_format": obj({"type": STR, "json_schema": ANY_OBJ}, ("type",)),
    "reasoning": obj({"effort": STR, "max_tokens": INT, "enabled": BOOL, "exclude": BOOL}),
    "user": STR, "provider": _PROVIDER_PREFS,
    "session_id": {"type": "string", "description": "sticks a conversation to the provider holding its cache"},
}, ("model", "messages"), description="OpenAI's chat completion request, with OpenRouter's routing fields")

_USAGE = obj({
    "prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT,
    "prompt_tokens_details": obj({"cached_tokens": INT, "cache_write_tokens": INT}),
    "completion_tokens_details": obj({"reasoning_tokens": INT}),
    "cost": {"type": "number", "description": "USD"},
    "tollway": obj({"cost_nanousd": {"type": "integer", "description": "the exact cost, in 1e-9 USD"},
                    "estimated": {"type": "boolean", "description": "tokens estimated (upstream sent no usage)"}}),
}, ("prompt_tokens", "completion_tokens", "total_tokens"))

_CHAT_COMPLETION = obj({
    "id": {"type": "string", "description": "tollway's generation id (gen-...), also in X-Generation-Id"},
    "object": {"const": "chat.completion"}, "created": INT, "model": STR,
    "provider": {"type": "string", "description": "the provider that served it"},
    "choices": {"type": "array", "items": obj({
        "index": INT, "finish_reason": nullable(STR), "native_finish_reason": nullable(STR),
        "message": obj({"role": {"const": "assistant"}, "content": nullable(STR), "refusal": nullable(STR),
                        "tool_calls": {"type": "array", "items": ANY_OBJ}, "reasoning": nullable(STR)}, ("role",)),
    }, ("index", "message"))},
    "usage": _USAGE,
}, ("id", "object", "created", "model", "choices"))

_ANTHROPIC_BLOCK = obj({"type": STR, "text": STR, "source": ANY_OBJ, "id": STR, "name": STR, "input": {},
                        "tool_use_id": STR, "content": {"anyOf": [STR, {"type": "array", "items": ANY_OBJ}]},
                        "is_error": BOOL, "cache_control": ANY_OBJ}, ("type",))
_ANTHROPIC_CONTENT: Schema = {"anyOf": [STR, {"type": "array", "items": _ANTHROPIC_BLOCK}]}

_MESSAGES_FIELDS: dict[str, Schema] = {
    "model": STR, "max_tokens": {"type": "integer", "minimum": 1},
    "messages": {"type": "array", "minItems": 1,
                 "items": obj({"role": {"enum": ["user", "assistant", "system"]}, "content": _ANTHROPIC_CONTENT},
                              ("role", "content"))},
    "system": _ANTHROPIC_CONTENT, "stream": BOOL, "temperature": NUM, "top_p": NUM, "top_k": INT,
    "stop_sequences": {"type": "array", "items": STR},
    "tools": {"type": "array", "items": obj({"name": STR, "description": STR, "input_schema": ANY_OBJ}, ("name",))},
    "tool_choice": obj({"type": {"enum": ["auto", "any", "tool", "none"]}, "name": STR,
                        "disable_parallel_tool_use": BOOL}, ("type",)),
    "thinking": obj({"type": {"enum": ["enabled", "disabled", "adaptive"]}, "budget_tokens": INT}, ("type",)),
    "metadata": obj({"user_id": STR}), "output_config": ANY_OBJ,
    "models": {"type": "array", "items": STR}, "provider": _PROVIDER_PREFS, "session_id": STR,
}
_MESSAGES_REQUEST = obj(_MESSAGES_FIELDS, ("model", "max_tokens", "messages"),
                        description="Anthropic's Messages request, to any model")
_COUNT_TOKENS_REQUEST = obj(_MESSAGES_FIELDS, ("model", "messages"),
                            description="a Messages request to count (max_tokens optional)")

_MESSAGE = obj({
    "id": STR, "type": {"const": "message"}, "role": {"const": "assistant"}, "model": STR,
    "content": {"type": "array", "items": ANY_OBJ}, "stop_reason": nullable(STR), "stop_sequence": nullable(STR),
    "usage": obj({"input_tokens": INT, "output_tokens": INT, "cache_creation_input_tokens": INT,
                  "cache_read_input_tokens": INT}, ("input_tokens", "output_tokens")),
}, ("id", "type", "role", "model", "content", "usage"))

_EMBEDDINGS_REQUEST = obj({
    "model": STR,
    "input": {"anyOf": [STR, {"type": "array", "items": STR}, {"type": "array", "items": INT},
                        {"type": "array", "items": {"type": "array", "items": INT}}]},
    "dimensions": {"type": "integer", "minimum": 1}, "encoding_format": {"enum": ["float", "base64"]},
    "user": STR, "provider": _PROVIDER_PREFS,
}, ("model", "input"))

_EMBEDDINGS = obj({"object": {"const": "list"}, "model": STR, "id": STR, "provider": STR,
                   "data": {"type": "array", "items": obj({"object": {"const": "embedding"}, "index": INT,
                                                           "embedding": {"anyOf": [{"type": "array", "items": NUM},
                                                                                   STR]}})},
                   "usage": _USAGE | {"required": ["prompt_tokens", "total_tokens"]}}, ("object", "data", "model"))

_GENERATION = obj({"data": obj({
    "id": STR, "upstream_id": nullable(STR), "created_at": {"type": "string", "format": "date-time"},
    "model": STR, "provider_name": nullable(STR), "session_id": nullable(STR), "streamed": BOOL, "cancelled": BOOL,
    "tokens_prompt": INT, "tokens_completion": INT, "native_tokens_reasoning": INT, "native_tokens_cached": INT,
    "total_cost": NUM, "latency": nullable(INT), "finish_reason": nullable(STR),
    "provider_responses": nullable({"type": "array", "items": ANY_OBJ}),
    "tollway": obj({"status": STR, "http_status": nullable(INT), "cost_nanousd": INT, "estimated": BOOL,
                    "error": nullable(STR)}),
}, ("id", "model", "tokens_prompt", "tokens_completion", "total_cost"))}, ("data",))

_MODEL_OPENAI = obj({"id": STR, "object": {"const": "model"}, "created": INT, "owned_by": STR},
                    ("id", "object", "created", "owned_by"))
_MODEL_LIST_OPENAI = obj({"object": {"const": "list"}, "data": {"type": "array", "items": _MODEL_OPENAI}},
                         ("object", "data"))
_PRICING = obj({"prompt": STR, "completion": STR, "request": STR, "input_cache_read": STR, "input_cache_write": STR},
               description="USD per token, as decimal strings (OpenRouter's convention)")
_MODEL_OPENROUTER = obj({"id": STR, "name": STR, "created": INT, "description": STR,
                         "context_length": nullable(INT), "architecture": ANY_OBJ, "pricing": _PRICING,
                         "supported_parameters": {"type": "array", "items": STR}, "tollway": ANY_OBJ},
                        ("id", "name", "pricing"))
_MODEL_LIST_OPENROUTER = obj({"data": {"type": "array", "items": _MODEL_OPENROUTER}, "total_count": INT},
                             ("data",))
_ENDPOINTS = obj({"data": obj({"id": STR, "name": STR, "architecture": ANY_OBJ, "endpoints": {
    "type": "array", "items": obj({"name": STR, "provider_name": STR, "pricing": _PRICING,
                                   "context_length": INT, "uptime_last_30m": nullable(NUM),
                                   "latency_last_30m": nullable(ANY_OBJ), "throughput_last_30m": nullable(ANY_OBJ)})},
}, ("id", "endpoints"))}, ("data",))

_KEY_TOLLWAY = obj({"id": STR, "key_prefix": STR, "rpm": nullable(INT), "tpm": nullable(INT),
                    "allowed_models": nullable({"type": "array", "items": STR}), "policy": ANY_OBJ,
                    "country": nullable(STR), "is_admin": BOOL, "limit_nanousd": nullable(INT),
                    "usage_nanousd": INT}, description="exact figures in 1e-9 USD and tollway's own limits")
_KEY = obj({"hash": {"type": "string", "description": "the key's id (used in /api/v1/keys/{id})"},
            "name": STR, "label": STR, "disabled": BOOL, "limit": nullable(NUM), "limit_remaining": nullable(NUM),
            "limit_reset": nullable(STR), "usage": NUM, "usage_daily": NUM, "usage_weekly": NUM,
            "usage_monthly": NUM, "created_at": STR, "expires_at": nullable(STR), "tollway": _KEY_TOLLWAY},
           ("hash", "name", "label", "disabled", "limit", "usage"))
_CURRENT_KEY = obj({"data": obj({"label": STR, "limit": nullable(NUM), "limit_remaining": nullable(NUM),
                                 "limit_reset": nullable(STR), "usage": NUM, "usage_daily": NUM,
                                 "usage_weekly": NUM, "usage_monthly": NUM, "is_management_key": BOOL,
                                 "expires_at": nullable(STR)}, ("label", "limit", "usage"))}, ("data",))
_CREDITS = obj({"data": obj({"total_credits": NUM, "total_usage": NUM}, ("total_credits", "total_usage"))},
               ("data",))

_KEY_FIELDS: dict[str, Schema] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "description": "its owner or app"},
    "label": nullable({"type": "string", "maxLength": 200}),
    "limit": nullable(USD) | {"description": "spend limit in USD (null: unlimited)"},
    "limit_reset": nullable({"enum": ["daily", "weekly", "monthly"]}),
    "rpm": nullable({"type": "integer", "minimum": 1, "maximum": MAX_RATE}),
    "tpm": nullable({"type": "integer", "minimum": 1, "maximum": MAX_RATE}),
    "allowed_models": nullable({"type": "array", "maxItems": 1000, "items": {"type": "string", "maxLength": 200}}),
    "expires_at": nullable({"type": "string", "format": "date-time"}),
    "country": nullable({"type": "string", "pattern": "^[A-Za-z]{2}$", "description": "ISO 3166 alpha-2"}),
    "policy": nullable(obj({}, description="routing policies the key's requests can only narrow")),
}
_KEY_CREATE = obj(_KEY_FIELDS | {"is_admin": BOOL}, ("name",))
# The Responses API (tollway.responses): the fields tollway reads; anything else is echoed or,
# for a Responses-native provider, passed through.
_RESPONSES_REQUEST = obj({
    "model": STR, "input": {"anyOf": [STR, {"type": "array", "items": ANY_OBJ}]},
    "instructions": nullable(STR), "previous_response_id": nullable(STR), "stream": BOOL, "store": BOOL,
    "max_output_tokens": {"type": "integer", "minimum": 1}, "temperature": {"type": "number", "minimum": 0,
                                                                          "maximum": 2},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1}, "parallel_tool_calls": BOOL,
    "tools": {"type": "array", "items": obj({"type": STR}, ("type",))}, "tool_choice": {"anyOf": [STR, ANY_OBJ]},
    "reasoning": ANY_OBJ, "text": ANY_OBJ, "include": {"type": "array", "items": STR}, "metadata": ANY_OBJ,
    "prompt_cache_key": STR, "models": {"type": "array", "items": STR}, "provider": _PROVIDER_PREFS,
}, ("model", "input"), description="OpenAI's Responses request, to any model")

_RESPONSE = obj({
    "id": STR, "object": {"const": "response"}, "created_at": NUM, "model": STR,
    "status": {"enum": ["completed", "failed", "in_progress", "cancelled", "queued", "incomplete"]},
    "output": {"type": "array", "items": obj({"type": STR}, ("type",))},
    "usage": obj({"input_tokens": INT, "output_tokens": INT, "total_tokens": INT}),
}, ("id", "object", "created_at", "model", "output"), description="OpenAI's response object")

_KEY_UPDATE = obj(_KEY_FIELDS | {"disabled": {"type": "boolean", "description": "true revokes the key"}})
_TOP_UP = obj({"amount": USD, "note": nullable({"type": "string", "maxLength": 1000})}, ("amount",))

SCHEMAS: dict[str, Schema] = {
    "Error": _ERROR, "AnthropicError": _ANTHROPIC_ERROR,
    "ChatCompletionRequest": _CHAT_REQUEST, "ChatCompletion": _CHAT_COMPLETION,
    "MessagesRequest": _MESSAGES_REQUEST, "Message": _MESSAGE,
    "MessagesCountTokensRequest": _COUNT_TOKENS_REQUEST,
    "MessageTokensCount": obj({"input_tokens": INT}, ("input_tokens",)),
    "EmbeddingsRequest": _EMBEDDINGS_REQUEST, "Embeddings": _EMBEDDINGS,
    "ResponsesRequest": _RESPONSES_REQUEST, "Response": _RESPONSE,
    "ResponseDeleted": obj({"id": STR, "object": {"const": "response"}, "deleted": BOOL}, ("id", "deleted")),
    "ResponseItemList": obj({"object": {"const": "list"}, "data": {"type": "array", "items": ANY_OBJ},
                             "first_id": nullable(STR), "last_id": nullable(STR), "has_more": BOOL},
                            ("object", "data", "has_more")),
    "Generation": _GENERATION,
    "ModelListOpenAI": _MODEL_LIST_OPENAI, "ModelListOpenRouter": _MODEL_LIST_OPENROUTER, "ModelEndpoints": _ENDPOINTS,
    "CurrentKey": _CURRENT_KEY, "Credits": _CREDITS, "Key": _KEY,
    "KeyCreate": _KEY_CREATE, "KeyUpdate": _KEY_UPDATE, "TopUp": _TOP_UP,
    "KeyCreated": obj({"data": ref("Key"), "key": {"type": "string", "description": "the plain key, shown once"}},
                      ("data", "key")),
    "KeyResponse": obj({"data": ref("Key")}, ("data",)),
    "KeyList": obj({"data": {"type": "array", "items": ref("Key")}}, ("data",)),
    "KeyDeleted": obj({"deleted": BOOL}, ("deleted",)),
    "KeyUsage": obj({"data": obj({"hash": STR, "usage": NUM, "limit": nullable(NUM), "totals": ANY_OBJ,
                                  "tollway": _KEY_TOLLWAY}, ("hash", "usage", "totals"))}, ("data",)),
    "Health": obj({"status": STR, "version": STR}, ("status",)),
    "Report": obj({}, description="the same document `tollway report ... --json` prints"),
}
