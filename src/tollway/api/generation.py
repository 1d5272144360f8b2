"""GET /api/v1/generation?id=gen-...: a generation's ledger record, for its own key only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from tollway.api import inputs
from tollway.api.common import gateway_of, json_response
from tollway.errors import BadRequest, NotFound
from tollway.ledger.queries import get_generation
from tollway.metering import nano_to_usd


def render_generation(row: dict[str, Any]) -> dict[str, Any]:
    """OpenRouter's ``GenerationResponse`` fields (nullable ones present), plus tollway's."""
    created: datetime = row["created_at"]
    attempts = orjson.loads(row["attempts"]) if isinstance(row.get("attempts"), str) else row.get("attempts")
    if not attempts and row.get("provider"):
        # The ledger keeps the attempt list only after a fallback; one attempt is the row.
        attempts = [{"provider": row["provider"], "model": row["model"], "upstream_model": row.get("upstream_model"),
                     "status": row.get("http_status"), "latency_ms": row.get("latency_ms")}]
    cost = nano_to_usd(int(row.get("cost_nanousd") or 0))
    return {
        "id": row["id"], "upstream_id": row.get("upstream_id"), "request_id": None,
        "session_id": row.get("session_id"), "created_at": created.isoformat() + "Z",
        "model": row["model"], "provider_name": row.get("provider"), "router": None,
        "preset_id": None, "app_id": None, "http_referer": row.get("app"), "origin": row.get("app"),
        "user_agent": None, "external_user": None, "workspace_id": None, "data_region": None,
        "api_type": "completions" if row.get("api") == "chat" else row.get("api"),
        "streamed": bool(row.get("streamed")), "cancelled": bool(row.get("cancelled")),
        "tokens_prompt": int(row["prompt_tokens"]), "tokens_completion": int(row["completion_tokens"]),
        "native_tokens_prompt": int(row["prompt_tokens"]),
        "native_tokens_completion": int(row["completion_tokens"]),
        "native_tokens_reasoning": int(row["reasoning_tokens"]),
        "native_tokens_cached": int(row["cached_tokens"]),
        "native_tokens_completion_images": None,
        "num_media_prompt": None, "num_media_completion": None, "num_input_audio_prompt": None,
        "num_search_results": None, "num_fetches": None, "web_search_engine": None,
        "total_cost": cost, "usage": cost, "upstream_inference_cost": None, "cache_discount": None,
        "is_byok": False, "latency": row.get("latency_ms"), "generation_time": row.get("latency_ms"),
        "moderation_latency": None, "finish_reason": row.get("finish_reason"),
        "native_finish_reason": row.get("native_finish_reason"),
        "provider_responses": attempts,
        "tollway": {"status": row.get("status"), "http_status": row.get("http_status"),
                    "cost_nanousd": int(row.get("cost_nanousd") or 0), "estimated": bool(row.get("estimated")),
                    "time_to_first_token_ms": row.get("ttft_ms"), "app_title": row.get("app_title"),
                    "upstream_model": row.get("upstream_model"),
                    "cache_write_tokens": int(row.get("cache_write_tokens") or 0),
                    "error": row.get("error")},
    }


async def generation(request: Request) -> Response:
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    generation_id = request.query_params.get("id")
    if not generation_id:
        raise BadRequest("query parameter 'id' is required: /api/v1/generation?id=gen-...", code=400)
    if inputs.lookup_id(generation_id) is None:
        raise NotFound(f"generation {generation_id[:60]!r} not found for this key", code=404)
    pending = gateway.writer.pending(generation_id)
    if pending is not None:
        row: dict[str, Any] | None = pending.to_row()
    else:
        row = await run_in_threadpool(_load, gateway.engine, generation_id)
    if row is None or (not principal.is_admin and row.get("key_id") != principal.key_id):
        raise NotFound(f"generation {generation_id} not found for this key", code=404)
    return json_response({"data": render_generation(row)})


def _load(engine: Any, generation_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        return get_generation(conn, generation_id)
