"""The shipped catalog's facts: coverage, provenance, and internal consistency."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from tollway.catalog.merge import load_shipped
from tollway.config import ModelConfig, ProviderConfig

REQUIRED_MODELS = [
    "minimax/minimax-m2.5",
    "moonshotai/kimi-k2.5",
    "z-ai/glm-5",
    "deepseek/deepseek-v3.2",
    "anthropic/claude-opus-4.6",
    "anthropic/claude-sonnet-4.5",
    "google/gemini-3-flash-preview",
    "x-ai/grok-4.1-fast",
    "openai/gpt-5",
    "openai/gpt-5-mini",
    "openai/gpt-oss-120b",
    "qwen/qwen3-235b-a22b-2507",
    "meta-llama/llama-4-maverick",
    "mistralai/mistral-large-2512",
]
PROVIDER_COUNTRIES = {
    "openai": "US",
    "anthropic": "US",
    "google": "US",
    "xai": "US",
    "together": "US",
    "fireworks": "US",
    "groq": "US",
    "deepinfra": "US",
    "novita": "US",
    "deepseek": "CN",
    "moonshot": "CN",
    "zai": "CN",
    "minimax": "CN",
    "siliconflow": "CN",
    "dashscope": "SG",
    "mistral": "FR",
}
ISO2 = re.compile(r"^[A-Z]{2}$")


@pytest.fixture(scope="module")
def shipped() -> tuple[dict[str, ProviderConfig], dict[str, ModelConfig]]:
    providers, models = load_shipped()
    return {p.name: p for p in providers}, {m.id: m for m in models}


def test_catalog_covers_the_models_people_use(
    shipped: tuple[dict[str, ProviderConfig], dict[str, ModelConfig]],
) -> None:
    _, models = shipped
    assert len(models) >= 60
    missing = [m for m in REQUIRED_MODELS if m not in models]
    assert not missing, missing
    families = {"qwen/qwen3", "meta-llama/llama-4", "mistralai/", "openai/gpt-oss", "openai/gpt-5"}
    assert all(any(i.startswith(f) for i in models) for f in families)


def test_every_model_has_author_country_and_facts(
    shipped: tuple[dict[str, ProviderConfig], dict[str, ModelConfig]],
) -> None:
    _, models = shipped
    for model in models.values():
        assert model.author and model.id.startswith(model.author + "/"), model.id
        assert model.author_country and ISO2.match(model.author_country), model.id
        assert model.open_weights is not None, model.id
        assert model.context_length and model.context_length > 0, model.id
        assert model.release_date is not None and model.tokenizer, model.id
    assert models["moonshotai/kimi-k2.5"].author_country == "CN"  # OpenRouter's providers API says SG
    assert models["mistralai/mistral-large-2512"].author_country == "FR"
    assert models["anthropic/claude-opus-4.6"].open_weights is False
    assert models["openai/gpt-oss-120b"].open_weights is True


def test_moe_facts_are_consistent(shipped: tuple[dict[str, ProviderConfig], dict[str, ModelConfig]]) -> None:
    _, models = shipped
    moe = [m for m in models.values() if m.architecture.kind == "moe"]
    assert len(moe) >= 15
    for model in moe:
        arch = model.architecture
        assert arch.total_params_b and arch.source, model.id
        if arch.active_params_b is not None:
            assert Decimal(0) < arch.active_params_b < arch.total_params_b, model.id
    m25 = models["minimax/minimax-m2.5"].architecture
    assert (m25.total_params_b, m25.active_params_b) == (Decimal(229), Decimal(10))


def test_every_price_has_a_source_and_date(
    shipped: tuple[dict[str, ProviderConfig], dict[str, ModelConfig]],
) -> None:
    providers, models = shipped
    for model in models.values():
        assert model.endpoints, model.id
        for endpoint in model.endpoints:
            where = f"{model.id} @ {endpoint.provider}"
            assert endpoint.provider in providers, where
            assert endpoint.price_source and endpoint.price_date, where
            assert endpoint.pricing.prompt >= 0 and endpoint.pricing.completion >= 0, where


def test_first_party_list_prices(shipped: tuple[dict[str, ProviderConfig], dict[str, ModelConfig]]) -> None:
    _, models = shipped

    def at(model_id: str, provider: str) -> tuple[Decimal, Decimal]:
        endpoint = next(e for e in models[model_id].endpoints if e.provider == provider)
        return endpoint.pricing.prompt, endpoint.pricing.completion

    assert at("anthropic/claude-opus-4.6", "anthropic") == (Decimal(5), Decimal(25))
    assert at("minimax/minimax-m2.5", "minimax") == (Decimal("0.3"), Decimal("1.2"))
    assert at("z-ai/glm-5", "zai") == (Decimal(1), Decimal("3.2"))
    assert at("moonshotai/kimi-k2.5", "moonshot") == (Decimal("0.6"), Decimal(3))


def test_open_models_have_third_party_hosts(
    shipped: tuple[dict[str, ProviderConfig], dict[str, ModelConfig]],
) -> None:
    _, models = shipped
    hosts = {"together", "fireworks", "deepinfra", "groq", "novita", "siliconflow"}
    seen = {e.provider for m in models.values() for e in m.endpoints} & hosts
    assert seen == hosts
    gpt_oss = {e.provider for e in models["openai/gpt-oss-120b"].endpoints}
    assert {"groq", "together", "deepinfra"} <= gpt_oss


def test_providers_are_complete(shipped: tuple[dict[str, ProviderConfig], dict[str, ModelConfig]]) -> None:
    providers, _ = shipped
    for name, country in PROVIDER_COUNTRIES.items():
        provider = providers[name]
        assert provider.hosting_country == country, name
        assert provider.api_key_env and provider.api_key_env.endswith("_API_KEY"), name
        assert provider.base_url.startswith("https://"), name
        assert provider.api_key is None, "no key may ship in the catalog"
    assert providers["anthropic"].kind == "anthropic" and providers["google"].kind == "gemini"
    for local in ("vllm", "sglang", "ollama", "llamacpp"):
        assert providers[local].local and providers[local].disabled, local
