"""Merging the user's config over the shipped catalog.

Three layers, later ones win:

1. the shipped data files (``tollway/catalog/data/{providers,models}.json``, made by
   ``scripts/build_catalog.py``);
2. the catalog overrides file written by ``tollway catalog import`` (see
   :mod:`tollway.catalog.overrides`);
3. the user's ``providers:`` and ``models:``.

Rules, the same for every layer:

* A provider (by ``name``) or model (by ``id``) that already exists is merged field by field:
  only the keys the upper layer actually wrote replace the lower ones (pydantic's
  ``model_fields_set``), and nested objects (``pricing``, ``architecture``) merge the same way.
  So ``pricing: {prompt: 1.0}`` changes the input price and keeps the rest.
* A model's endpoints are matched by ``(provider, model)`` (the upstream model name, as
  ``tollway models show ID`` prints it); a match is merged, anything else is added.
* ``disabled`` is always the upper layer's: naming an entry means you want it, so a shipped
  local server (vLLM, Ollama..., shipped disabled) is enabled by listing it with its
  ``base_url``; ``disabled: true`` removes a provider, model or endpoint.
* Disabled entries are dropped from the result, as are endpoints at a disabled provider.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from tollway.config import EndpointConfig, ModelConfig, ProviderConfig, Settings

_M = TypeVar("_M", bound=BaseModel)


def load_shipped() -> tuple[list[ProviderConfig], list[ModelConfig]]:
    """Read and validate the package's data files (a few ms; JSON, not YAML, for speed)."""
    data = resources.files("tollway.catalog") / "data"
    providers_raw = orjson.loads(data.joinpath("providers.json").read_bytes())["providers"]
    models_raw = orjson.loads(data.joinpath("models.json").read_bytes())["models"]
    providers = [ProviderConfig.model_validate(p) for p in providers_raw]
    models = [ModelConfig.model_validate(m) for m in models_raw]
    return providers, models


def merge_fields(base: _M, over: _M) -> _M:
    """``base`` with the fields ``over`` explicitly set; nested models merge recursively."""
    updates: dict[str, Any] = {}
    for name in over.model_fields_set:
        mine, theirs = getattr(base, name), getattr(over, name)
        if isinstance(mine, BaseModel) and isinstance(theirs, type(mine)):
            updates[name] = merge_fields(mine, theirs)
        else:
            updates[name] = theirs
    merged = base.model_copy(update=updates)
    # model_copy doesn't re-validate, so keep the set-fields bookkeeping honest for later layers.
    merged.__pydantic_fields_set__ = base.model_fields_set | over.model_fields_set
    return merged


def _merge_endpoints(
    base: Sequence[EndpointConfig], over: Iterable[EndpointConfig]
) -> tuple[EndpointConfig, ...]:
    merged = {(e.provider, e.model): e for e in base}
    for endpoint in over:
        key = (endpoint.provider, endpoint.model)
        if key in merged:
            combined = merge_fields(merged[key], endpoint)
            merged[key] = combined.model_copy(update={"disabled": endpoint.disabled})
        else:
            merged[key] = endpoint
    return tuple(merged.values())


def merge_model(base: ModelConfig, over: ModelConfig) -> ModelConfig:
    """One model over another: fields by presence, endpoints by ``(provider, model)``."""
    endpoints = _merge_endpoints(base.endpoints, over.endpoints)
    merged = merge_fields(base, over.model_copy(update={"endpoints": ()}))
    return merged.model_copy(update={"endpoints": endpoints, "disabled": over.disabled})


def merge_provider(base: ProviderConfig, over: ProviderConfig) -> ProviderConfig:
    merged = merge_fields(base, over)
    return merged.model_copy(update={"disabled": over.disabled})


def merge_layers(
    providers: Sequence[ProviderConfig],
    models: Sequence[ModelConfig],
    upper_providers: Iterable[ProviderConfig],
    upper_models: Iterable[ModelConfig],
) -> tuple[list[ProviderConfig], list[ModelConfig]]:
    """One layer over another, keeping the lower layer's order and appending new entries."""
    provider_map = {p.name: p for p in providers}
    for provider in upper_providers:
        base = provider_map.get(provider.name)
        provider_map[provider.name] = provider if base is None else merge_provider(base, provider)
    model_map = {m.id: m for m in models}
    for model in upper_models:
        base_model = model_map.get(model.id)
        model_map[model.id] = model if base_model is None else merge_model(base_model, model)
    return list(provider_map.values()), list(model_map.values())


def drop_disabled(
    providers: Iterable[ProviderConfig],
    models: Iterable[ModelConfig],
) -> tuple[list[ProviderConfig], list[ModelConfig]]:
    """Remove disabled providers, models and endpoints, and endpoints at a disabled provider."""
    kept = [p for p in providers if not p.disabled]
    gone = {p.name for p in providers if p.disabled} - {p.name for p in kept}
    out = []
    for model in models:
        if model.disabled:
            continue
        endpoints = tuple(e for e in model.endpoints if not e.disabled and e.provider not in gone)
        out.append(
            model if endpoints == model.endpoints else model.model_copy(update={"endpoints": endpoints})
        )
    return kept, out


def merged_entries(settings: Settings) -> tuple[list[ProviderConfig], list[ModelConfig]]:
    """Shipped catalog, then the overrides file, then the user's config; disabled entries removed."""
    from tollway.catalog.overrides import load_overrides, overrides_path  # import cycle: overrides uses merge

    providers, models = load_shipped()
    extra = load_overrides(overrides_path(settings))
    providers, models = merge_layers(providers, models, extra.providers, extra.models)
    providers, models = merge_layers(providers, models, settings.providers, settings.models)
    return drop_disabled(providers, models)
