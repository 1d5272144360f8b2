"""The merged, read-only view of models and providers that routing works from."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from tollway.config import EndpointConfig, ModelConfig, ProviderConfig, Settings
from tollway.metering import PriceTable


@dataclass(frozen=True, slots=True)
class Catalog:
    """Models by id and providers by name, with each endpoint's prices pre-scaled."""

    models: Mapping[str, ModelConfig]
    providers: Mapping[str, ProviderConfig]
    prices: Mapping[tuple[str, str, str], PriceTable]  # (model id, provider, upstream model)

    def price_table(self, model_id: str, endpoint: EndpointConfig) -> PriceTable:
        key = (model_id, endpoint.provider, endpoint.model)
        table = self.prices.get(key)
        return table if table is not None else PriceTable.from_pricing(endpoint.pricing)

    def active_endpoints(self, model: ModelConfig) -> list[tuple[EndpointConfig, ProviderConfig]]:
        """Endpoints that are enabled and whose provider is active (has a key, or needs none)."""
        out = []
        for endpoint in model.endpoints:
            provider = self.providers.get(endpoint.provider)
            if provider is not None and provider.active and not endpoint.disabled:
                out.append((endpoint, provider))
        return out

    def served_only_by(self, model_id: str, accepts: Callable[[ProviderConfig], bool]) -> bool:
        """Whether ``model_id`` names a model with active endpoints, every one of them at a
        provider that ``accepts`` (e.g. one that speaks the client's wire format)."""
        model = self.models.get(model_id)
        if model is None:
            return False
        endpoints = self.active_endpoints(model)
        return bool(endpoints) and all(accepts(provider) for _, provider in endpoints)

    def is_active(self, model: ModelConfig) -> bool:
        return not model.disabled and bool(self.active_endpoints(model))

    def listed_models(self, *, include_inactive: bool = False) -> list[ModelConfig]:
        return [m for m in self.models.values()
                if include_inactive or self.is_active(m)]


def _with_env_key(provider: ProviderConfig, env: Mapping[str, str]) -> ProviderConfig:
    if provider.api_key is None and provider.api_key_env and env.get(provider.api_key_env):
        return provider.model_copy(update={"api_key": SecretStr(env[provider.api_key_env])})
    return provider


def build_catalog(settings: Settings, env: Mapping[str, str] | None = None) -> Catalog:
    """Merge the shipped catalog (when enabled) and the user's config into one index.

    The user's entries win: a provider or model with the same name/id replaces the
    shipped one field by field (see ``tollway.catalog.merge``).
    """
    environ = os.environ if env is None else env
    provider_list: list[ProviderConfig] = list(settings.providers)
    model_list: list[ModelConfig] = list(settings.models)
    if settings.catalog:
        provider_list, model_list = merge_over_shipped(settings)
    providers = {p.name: p for p in provider_list}
    models = {m.id: m for m in model_list}
    providers = {name: _with_env_key(p, environ) for name, p in providers.items()}
    prices = {
        (m.id, e.provider, e.model): PriceTable.from_pricing(e.pricing)
        for m in models.values() for e in m.endpoints
    }
    return Catalog(models=models, providers=providers, prices=prices)


def merge_over_shipped(settings: Settings) -> tuple[list[ProviderConfig], list[ModelConfig]]:
    """The shipped catalog with the user's providers and models merged over it."""
    from tollway.catalog.merge import merged_entries  # the data files load lazily, once

    return merged_entries(settings)
