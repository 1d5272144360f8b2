"""User config over the shipped catalog: merge by presence, disable, add; activity by env keys."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import yaml

from tests.catalog.conftest import settings_in
from tests.support.configs import MINIMAL
from tollway.catalog import build_catalog
from tollway.config import load_settings


def test_minimal_config_keeps_working(tmp_path: Path) -> None:
    config = tmp_path / "tollway.yaml"
    config.write_text(MINIMAL.format(db=tmp_path / "t.db"))
    settings = load_settings(config, env={"BENCH_KEY": "k"})
    catalog = build_catalog(settings, env={})
    echo = catalog.models["bench/echo"]
    assert catalog.is_active(echo)
    assert [m.id for m in catalog.listed_models()] == ["bench/echo"]  # no catalog provider has a key
    assert len(catalog.listed_models(include_inactive=True)) > 60
    assert catalog.price_table("bench/echo", echo.endpoints[0]) is not None


def test_catalog_off_means_user_entries_only(tmp_path: Path) -> None:
    settings = settings_in(tmp_path, {"catalog": False})
    catalog = build_catalog(settings, env={"OPENAI_API_KEY": "sk"})
    assert catalog.models == {} and catalog.providers == {}


def test_env_key_activates_a_provider(tmp_path: Path) -> None:
    catalog = build_catalog(settings_in(tmp_path), env={"DEEPSEEK_API_KEY": "sk-ds"})
    listed = {m.id for m in catalog.listed_models()}
    assert "deepseek/deepseek-v3.2" in listed
    assert all(m.startswith("deepseek/") for m in listed)
    assert catalog.providers["deepseek"].api_key is not None
    assert catalog.providers["openai"].active is False


def test_partial_price_override_keeps_other_fields(tmp_path: Path) -> None:
    raw = {
        "models": [
            {
                "id": "minimax/minimax-m2.5",
                "endpoints": [
                    {"provider": "minimax", "model": "MiniMax-M2.5", "pricing": {"prompt": "0.25"}}
                ],
            }
        ]
    }
    catalog = build_catalog(settings_in(tmp_path, raw), env={})
    model = catalog.models["minimax/minimax-m2.5"]
    endpoint = next(e for e in model.endpoints if e.provider == "minimax")
    assert endpoint.pricing.prompt == Decimal("0.25")
    assert endpoint.pricing.completion == Decimal("1.2")  # kept from the shipped entry
    assert endpoint.price_source and "litellm" in endpoint.price_source
    assert model.author_country == "CN" and len(model.endpoints) > 3  # other fields and endpoints kept
    table = catalog.price_table(model.id, endpoint)
    assert table is catalog.prices[(model.id, "minimax", "MiniMax-M2.5")]


def test_disable_model_endpoint_and_provider(tmp_path: Path) -> None:
    raw = {
        "providers": [{"name": "together", "base_url": "https://api.together.xyz/v1", "disabled": True}],
        "models": [
            {"id": "z-ai/glm-5", "disabled": True},
            {
                "id": "moonshotai/kimi-k2.5",
                "endpoints": [{"provider": "deepinfra", "model": "moonshotai/Kimi-K2.5", "disabled": True}],
            },
        ],
    }
    catalog = build_catalog(settings_in(tmp_path, raw), env={})
    assert "z-ai/glm-5" not in catalog.models
    assert "together" not in catalog.providers
    kimi = {e.provider for e in catalog.models["moonshotai/kimi-k2.5"].endpoints}
    assert "deepinfra" not in kimi and "together" not in kimi and "moonshot" in kimi


def test_naming_a_local_server_enables_it(tmp_path: Path) -> None:
    shipped = build_catalog(settings_in(tmp_path), env={})
    assert "vllm" not in shipped.providers  # shipped disabled: listed nowhere until configured
    raw = {"providers": [{"name": "vllm", "base_url": "http://gpu-box:8000/v1"}]}
    catalog = build_catalog(settings_in(tmp_path, raw), env={})
    vllm = catalog.providers["vllm"]
    assert vllm.active and vllm.local and vllm.base_url == "http://gpu-box:8000/v1"
    assert vllm.display_name == "vLLM (local)"  # merged, not replaced
    listed = {m.id for m in catalog.listed_models()}
    assert "openai/gpt-oss-120b" in listed and "anthropic/claude-opus-4.6" not in listed
    upstream = {e.model for e in catalog.models["openai/gpt-oss-120b"].endpoints if e.provider == "vllm"}
    assert upstream == {"openai/gpt-oss-120b"}


def test_user_can_add_models_and_providers(tmp_path: Path) -> None:
    raw = {
        "providers": [
            {"name": "acme", "base_url": "https://llm.acme.test/v1", "api_key": "k", "hosting_country": "DE"}
        ],
        "models": [
            {"id": "acme/tiny", "author_country": "DE", "endpoints": [{"provider": "acme", "model": "tiny"}]},
            {"id": "deepseek/deepseek-v3.2", "endpoints": [{"provider": "acme", "model": "dsv32"}]},
        ],
    }
    catalog = build_catalog(settings_in(tmp_path, raw), env={})
    assert catalog.is_active(catalog.models["acme/tiny"])
    ds = catalog.models["deepseek/deepseek-v3.2"]
    assert {"acme", "deepseek", "openrouter"} <= {e.provider for e in ds.endpoints}
    assert [e.provider for e, _ in catalog.active_endpoints(ds)] == ["acme"]


def test_overrides_file_sits_between_shipped_and_user(tmp_path: Path) -> None:
    (tmp_path / "catalog_overrides.yaml").write_text(
        yaml.safe_dump(
            {
                "models": [
                    {
                        "id": "z-ai/glm-5",
                        "context_length": 999,
                        "endpoints": [
                            {
                                "provider": "zai",
                                "model": "glm-5",
                                "pricing": {"prompt": "0.5", "completion": "2"},
                            }
                        ],
                    }
                ]
            }
        )
    )
    catalog = build_catalog(settings_in(tmp_path), env={})
    glm = catalog.models["z-ai/glm-5"]
    assert glm.context_length == 999
    assert next(e for e in glm.endpoints if e.provider == "zai").pricing.prompt == Decimal("0.5")
    user = {"models": [{"id": "z-ai/glm-5", "context_length": 1000}]}
    catalog = build_catalog(settings_in(tmp_path, user), env={})
    assert catalog.models["z-ai/glm-5"].context_length == 1000  # the user's config wins
    elsewhere = settings_in(tmp_path, {"catalog_overrides": "nested/other.yaml"})
    assert build_catalog(elsewhere, env={}).models["z-ai/glm-5"].context_length != 999
