"""The catalog rendered in OpenRouter's and OpenAI's model-list shapes (pure functions).

OpenRouter's fields come first and follow its public API (``GET /api/v1/models`` and
``GET /api/v1/models/{author}/{slug}/endpoints``) closely enough for the official ``openrouter``
SDK to validate them; prices there are USD *per token* as decimal strings.  tollway's own facts
(maker's country, open weights, MoE sizes, hosting country, data policy, price provenance) go
in a ``"tollway"`` object on each model and endpoint, which clients that don't know it ignore.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from tollway.catalog.index import Catalog
from tollway.catalog.selection import pick_endpoint
from tollway.config import EndpointConfig, ModelConfig, Pricing, ProviderConfig

_MILLION = Decimal(1_000_000)
# What an OpenAI-compatible chat endpoint accepts when the catalog doesn't say otherwise.
DEFAULT_PARAMETERS = (
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "response_format",
    "tools",
    "tool_choice",
)
_TOOL_PARAMETERS = {"tools", "tool_choice"}


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """Measured health of one endpoint (routing fills this in; all optional).

    ``latency_last_30m`` (ms) and ``throughput_last_30m`` (tokens/s) are percentile maps with
    ``p50``, ``p75``, ``p90``, ``p99``, as OpenRouter reports them; uptimes are percentages.
    """

    uptime_last_5m: float | None = None
    uptime_last_30m: float | None = None
    uptime_last_1d: float | None = None
    latency_last_30m: Mapping[str, float] | None = None
    throughput_last_30m: Mapping[str, float] | None = None


# (model id, provider name) -> health, or None when nothing was measured.
HealthLookup = Callable[[str, str], EndpointHealth | None]


def health_lookup(source: HealthLookup | Mapping[tuple[str, str], EndpointHealth] | None) -> HealthLookup:
    """Accept a callable, a mapping keyed by ``(model id, provider)``, or nothing."""
    if source is None:
        return lambda _model, _provider: None
    if callable(source):
        return source
    table = source
    return lambda model, provider: table.get((model, provider))


def per_token(per_million: Decimal | None) -> str | None:
    """USD per million tokens -> OpenRouter's USD-per-token decimal string (no exponent)."""
    if per_million is None:
        return None
    value = (per_million / _MILLION).normalize()
    text = format(value, "f")
    return "0" if value == 0 else text


def _pricing(p: Pricing) -> dict[str, str]:
    out = {
        "prompt": per_token(p.prompt),
        "completion": per_token(p.completion),
        "request": per_token(p.request * _MILLION),  # flat USD per request, not per token
        "input_cache_read": per_token(p.cache_read),
        "input_cache_write": per_token(p.cache_write),
        "internal_reasoning": per_token(p.reasoning),
    }
    return {k: v for k, v in out.items() if v is not None}


def _created(model: ModelConfig) -> int:
    if model.release_date is None:
        return 0
    return int(datetime.combine(model.release_date, time(0), tzinfo=UTC).timestamp())


def _modality(model: ModelConfig) -> str:
    return "+".join(model.input_modalities) + "->" + "+".join(model.output_modalities)


def _parameters(endpoint: EndpointConfig) -> list[str]:
    params = endpoint.supported_parameters or DEFAULT_PARAMETERS
    return [p for p in params if endpoint.supports_tools or p not in _TOOL_PARAMETERS]


def _decimal_or_none(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _model_extension(catalog: Catalog, model: ModelConfig, endpoint: EndpointConfig | None) -> dict[str, Any]:
    arch = model.architecture
    active = catalog.active_endpoints(model)
    return {
        "author": model.author_name,
        "author_country": model.author_country,
        "open_weights": model.open_weights,
        "architecture": {
            "kind": arch.kind,
            "total_params_b": _decimal_or_none(arch.total_params_b),
            "active_params_b": _decimal_or_none(arch.active_params_b),
            "source": arch.source,
        },
        "release_date": model.release_date.isoformat() if model.release_date else None,
        "active": catalog.is_active(model),
        "endpoints": len(model.endpoints),
        "active_endpoints": len(active),
        "priced_at": None if endpoint is None else endpoint.provider,
    }


def render_model(catalog: Catalog, model: ModelConfig) -> dict[str, Any]:
    """One entry of ``GET /api/v1/models`` (the ``Model`` schema)."""
    choice = pick_endpoint(catalog, model)
    endpoint = choice.endpoint if choice is not None else None
    params: list[str] = []
    for candidate in model.endpoints:
        params.extend(p for p in _parameters(candidate) if p not in params)
    context = (
        endpoint.context_length if endpoint and endpoint.context_length else None
    ) or model.context_length
    return {
        "id": model.id,
        "canonical_slug": model.id,
        "hugging_face_id": model.hugging_face_id,
        "name": model.name or model.id,
        "created": _created(model),
        "description": model.description or "",
        "context_length": model.context_length,
        "architecture": {
            "modality": _modality(model),
            "input_modalities": list(model.input_modalities),
            "output_modalities": list(model.output_modalities),
            "tokenizer": model.tokenizer or "Other",
            "instruct_type": None,
        },
        "pricing": _pricing(endpoint.pricing if endpoint else Pricing()),
        "top_provider": {
            "context_length": context,
            "max_completion_tokens": endpoint.max_output_tokens if endpoint else None,
            "is_moderated": False,
        },
        "per_request_limits": None,
        "supported_parameters": params or list(DEFAULT_PARAMETERS),
        "default_parameters": {},
        "supported_voices": None,
        "knowledge_cutoff": None,
        "expiration_date": None,
        "links": {"details": f"/api/v1/models/{model.id}/endpoints"},
        "tollway": _model_extension(catalog, model, endpoint),
    }


def render_models(catalog: Catalog, *, include_all: bool = False) -> dict[str, Any]:
    """``GET /api/v1/models``: models with an active endpoint, or the whole catalog."""
    data = [render_model(catalog, m) for m in catalog.listed_models(include_inactive=include_all)]
    return {"data": data, "total_count": len(data), "links": {"next": None}}


def render_openai_models(catalog: Catalog, *, include_all: bool = False) -> dict[str, Any]:
    """``GET /v1/models`` in OpenAI's shape."""
    return {
        "object": "list",
        "data": [
            {"id": m.id, "object": "model", "created": _created(m), "owned_by": m.author_name}
            for m in catalog.listed_models(include_inactive=include_all)
        ],
    }


def _percentiles(stats: Mapping[str, float] | None) -> dict[str, float] | None:
    if stats is None:
        return None
    return {k: float(stats[k]) for k in ("p50", "p75", "p90", "p99")}


def render_endpoint(
    catalog: Catalog,
    model: ModelConfig,
    endpoint: EndpointConfig,
    provider: ProviderConfig | None,
    health: EndpointHealth | None,
) -> dict[str, Any]:
    """One ``PublicEndpoint``."""
    display = (provider.display_name if provider else None) or endpoint.provider
    tools = endpoint.supports_tools
    policy_source = provider
    measured = health or EndpointHealth()
    return {
        "name": f"{display} | {model.id}",
        "model_id": model.id,
        "model_name": model.name or model.id,
        "context_length": endpoint.context_length or model.context_length or 0,
        "pricing": _pricing(endpoint.pricing),
        "provider_name": display,
        "tag": endpoint.provider
        if not endpoint.quantization
        else f"{endpoint.provider}/{endpoint.quantization}",
        "quantization": endpoint.quantization,
        "max_completion_tokens": endpoint.max_output_tokens,
        "max_prompt_tokens": None,
        "supported_parameters": _parameters(endpoint),
        "supports_implicit_caching": False,
        "supports_tool_choice": {"auto": tools, "function": tools, "none": tools, "required": tools},
        "supports_diarization": False,
        "service_tier": None,
        "native_tools": {},
        "uptime_last_5m": measured.uptime_last_5m,
        "uptime_last_30m": measured.uptime_last_30m,
        "uptime_last_1d": measured.uptime_last_1d,
        "latency_last_30m": _percentiles(measured.latency_last_30m),
        "throughput_last_30m": _percentiles(measured.throughput_last_30m),
        "tollway": {
            "provider": endpoint.provider,
            "upstream_model": endpoint.model,
            "active": provider is not None and provider.active,
            "local": provider is not None and provider.local,
            "hosting_country": endpoint.hosting_country
            or (policy_source.hosting_country if policy_source else None),
            "data_retention": endpoint.data_retention
            if endpoint.data_retention is not None
            else (policy_source.data_retention if policy_source else None),
            "trains_on_data": endpoint.trains_on_data
            if endpoint.trains_on_data is not None
            else (policy_source.trains_on_data if policy_source else None),
            "price_source": endpoint.price_source,
            "price_date": endpoint.price_date.isoformat() if endpoint.price_date else None,
        },
    }


def render_endpoints(
    catalog: Catalog, model: ModelConfig, *, include_all: bool = False, health: HealthLookup | None = None
) -> dict[str, Any]:
    """``GET /api/v1/models/{author}/{slug}/endpoints`` (``{"data": ListEndpointsResponse}``)."""
    lookup = health or health_lookup(None)
    if include_all:
        pairs = [(e, catalog.providers.get(e.provider)) for e in model.endpoints if not e.disabled]
    else:
        pairs = [(e, p) for e, p in catalog.active_endpoints(model)]
    return {
        "data": {
            "id": model.id,
            "name": model.name or model.id,
            "created": _created(model),
            "description": model.description or "",
            "architecture": {
                "modality": _modality(model),
                "input_modalities": list(model.input_modalities),
                "output_modalities": list(model.output_modalities),
                "tokenizer": model.tokenizer or "Other",
                "instruct_type": None,
            },
            "endpoints": [
                render_endpoint(catalog, model, e, p, lookup(model.id, e.provider)) for e, p in pairs
            ],
            "tollway": _model_extension(catalog, model, None),
        }
    }


def not_found(model_id: str) -> dict[str, Any]:
    """OpenRouter's error body for an unknown model."""
    return {
        "error": {"code": 404, "type": "not_found_error",
                  "message": f"model {model_id!r} not found; see GET /api/v1/models?all=true"}
    }
