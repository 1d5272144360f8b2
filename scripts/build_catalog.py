#!/usr/bin/env python3
"""Build tollway's shipped catalog (``src/tollway/catalog/data/*.json``) from the reference data.

Run from the repository root::

    python scripts/build_catalog.py [--shared ../shared]

Inputs (all under ``<shared>/data``, see its README for provenance and licences):

* ``openrouter_models/jvrck_openrouterlist/openrouter_api_v1_models_<DATE>.json``: names, context
  lengths, modalities, tokenizers, Hugging Face ids and OpenRouter's own prices.  For each model the
  newest snapshot that lists it is used, and the snapshot date becomes the price date.
* ``llm_prices/litellm/model_prices_and_context_window.json``: first-party list prices (OpenAI,
  Anthropic, Gemini, DeepSeek, Moonshot, Z.ai, MiniMax, DashScope, xAI, Mistral) and per-host
  prices of open models (``together_ai/``, ``fireworks_ai/``, ``deepinfra/``, ``groq/``, ``novita/``).
* ``llm_prices/models_dev/models_dev_providers.json``: SiliconFlow prices, and a fallback for the
  other open-model hosts.
* ``model_metadata/openrouter_author_country.csv``: the maker's country per author slug.
* ``model_metadata/moe_architecture.csv``: total/active parameters of MoE models.

Only facts are copied, each endpoint with ``price_source`` and ``price_date``.  The generated
files are committed; the package never reads ``shared/`` at run time.  The provider table below is
hand-curated (base URLs, key env vars, hosting countries, data policies) and is the one place to
edit when a vendor changes its API.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "tollway" / "catalog" / "data"

LITELLM_SRC = "litellm 1.110.2 model_prices_and_context_window.json"
LITELLM_DATE = "2026-11-29"  # the newest litellm release on the day the table was gathered
MODELS_DEV_SRC = "models.dev @ f3fc6922"
MODELS_DEV_DATE = "2026-07-02"

# --- providers (hand-curated) -------------------------------------------------------------------
# hosting_country: where the provider serves requests from (ISO 3166 alpha-2).  data_retention:
# the provider keeps prompts/completions beyond the request (abuse monitoring, logs) by default.
# trains_on_data: the default API terms allow training on API traffic.
PROVIDERS: list[dict[str, Any]] = [
    dict(
        name="openai",
        kind="openai",
        base_url="https://api.openai.com/v1",
        api_key_env="OPENAI_API_KEY",
        display_name="OpenAI",
        hosting_country="US",
        data_retention=True,
        trains_on_data=False,
        first_party_for=["openai"],
        notes="API data kept up to 30 days for abuse monitoring; not used for training by default.",
    ),
    dict(
        name="anthropic",
        kind="anthropic",
        base_url="https://api.anthropic.com",
        api_key_env="ANTHROPIC_API_KEY",
        display_name="Anthropic",
        hosting_country="US",
        data_retention=True,
        trains_on_data=False,
        first_party_for=["anthropic"],
        notes="Commercial API: inputs/outputs kept up to 30 days; not used for training.",
    ),
    dict(
        name="google",
        kind="gemini",
        base_url="https://generativelanguage.googleapis.com",
        api_key_env="GEMINI_API_KEY",
        display_name="Google AI Studio",
        hosting_country="US",
        data_retention=True,
        trains_on_data=False,
        first_party_for=["google"],
        notes="Paid tier: not used for training, kept for abuse monitoring. The free tier may train.",
    ),
    dict(
        name="deepseek",
        kind="openai",
        base_url="https://api.deepseek.com/v1",
        api_key_env="DEEPSEEK_API_KEY",
        display_name="DeepSeek",
        hosting_country="CN",
        data_retention=True,
        trains_on_data=True,
        first_party_for=["deepseek"],
        notes="Privacy policy allows using inputs to improve services; servers in the PRC.",
    ),
    dict(
        name="moonshot",
        kind="openai",
        base_url="https://api.moonshot.ai/v1",
        api_key_env="MOONSHOT_API_KEY",
        display_name="Moonshot AI",
        hosting_country="CN",
        data_retention=True,
        trains_on_data=False,
        first_party_for=["moonshotai"],
        notes="International platform (api.moonshot.ai); Moonshot AI is Beijing-based, recorded as CN.",
    ),
    dict(
        name="zai",
        kind="openai",
        base_url="https://api.z.ai/api/paas/v4",
        api_key_env="ZAI_API_KEY",
        display_name="Z.ai (Zhipu)",
        hosting_country="CN",
        data_retention=True,
        trains_on_data=False,
        first_party_for=["z-ai"],
        notes="Zhipu AI's international API; recorded as CN (the maker's home).",
    ),
    dict(
        name="minimax",
        kind="openai",
        base_url="https://api.minimax.io/v1",
        api_key_env="MINIMAX_API_KEY",
        display_name="MiniMax",
        hosting_country="CN",
        data_retention=True,
        trains_on_data=False,
        first_party_for=["minimax"],
        notes="International endpoint api.minimax.io; its hosting region is not published, so it is "
        "recorded as CN (the conservative choice for data-residency filters), not SG.",
    ),
    dict(
        name="dashscope",
        kind="openai",
        base_url="https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        api_key_env="DASHSCOPE_API_KEY",
        display_name="Alibaba Cloud DashScope (intl)",
        hosting_country="SG",
        data_retention=True,
        trains_on_data=False,
        first_party_for=["qwen"],
        notes="The international Model Studio region is Singapore; the mainland endpoint "
        "(dashscope.aliyuncs.com) is CN: add it as your own provider if you use it.",
    ),
    dict(
        name="xai",
        kind="openai",
        base_url="https://api.x.ai/v1",
        api_key_env="XAI_API_KEY",
        display_name="xAI",
        hosting_country="US",
        data_retention=True,
        trains_on_data=False,
        first_party_for=["x-ai"],
        notes="API requests kept up to 30 days.",
    ),
    dict(
        name="mistral",
        kind="openai",
        base_url="https://api.mistral.ai/v1",
        api_key_env="MISTRAL_API_KEY",
        display_name="Mistral AI",
        hosting_country="FR",
        data_retention=True,
        trains_on_data=False,
        first_party_for=["mistralai"],
        notes="La Plateforme, hosted in the EU; paid API not used for training.",
    ),
    dict(
        name="together",
        kind="openai",
        base_url="https://api.together.xyz/v1",
        api_key_env="TOGETHER_API_KEY",
        display_name="Together AI",
        hosting_country="US",
        data_retention=False,
        trains_on_data=False,
        notes="Retention and training are opt-in account settings, off by default.",
    ),
    dict(
        name="fireworks",
        kind="openai",
        base_url="https://api.fireworks.ai/inference/v1",
        api_key_env="FIREWORKS_API_KEY",
        display_name="Fireworks AI",
        hosting_country="US",
        data_retention=False,
        trains_on_data=False,
        notes="Zero data retention for open models by default.",
    ),
    dict(
        name="groq",
        kind="openai",
        base_url="https://api.groq.com/openai/v1",
        api_key_env="GROQ_API_KEY",
        display_name="Groq",
        hosting_country="US",
        data_retention=False,
        trains_on_data=False,
    ),
    dict(
        name="deepinfra",
        kind="openai",
        base_url="https://api.deepinfra.com/v1/openai",
        api_key_env="DEEPINFRA_API_KEY",
        display_name="DeepInfra",
        hosting_country="US",
        data_retention=False,
        trains_on_data=False,
    ),
    dict(
        name="siliconflow",
        kind="openai",
        base_url="https://api.siliconflow.com/v1",
        api_key_env="SILICONFLOW_API_KEY",
        display_name="SiliconFlow",
        hosting_country="CN",
        data_retention=True,
        trains_on_data=False,
        notes="International endpoint (prices from models.dev's 'siliconflow'); Beijing-based, recorded CN.",
    ),
    dict(
        name="novita",
        kind="openai",
        base_url="https://api.novita.ai/v3/openai",
        api_key_env="NOVITA_API_KEY",
        display_name="Novita AI",
        hosting_country="US",
        data_retention=False,
        trains_on_data=False,
    ),
    dict(
        name="openrouter",
        kind="openai",
        base_url="https://openrouter.ai/api/v1",
        api_key_env="OPENROUTER_API_KEY",
        display_name="OpenRouter",
        hosting_country=None,
        data_retention=False,
        trains_on_data=False,
        notes="A router: the serving provider (and its country) varies per request. Prices are "
        "OpenRouter's list prices; `tollway catalog import` refreshes them.",
    ),
    # Local OpenAI-compatible servers: shipped disabled; naming one in your config (with its
    # base_url) enables it.  They need no key and charge nothing per token.
    dict(
        name="vllm",
        kind="openai",
        base_url="http://127.0.0.1:8000/v1",
        display_name="vLLM (local)",
        local=True,
        disabled=True,
    ),
    dict(
        name="sglang",
        kind="openai",
        base_url="http://127.0.0.1:30000/v1",
        display_name="SGLang (local)",
        local=True,
        disabled=True,
    ),
    dict(
        name="ollama",
        kind="openai",
        base_url="http://127.0.0.1:11434/v1",
        display_name="Ollama (local)",
        local=True,
        disabled=True,
    ),
    dict(
        name="llamacpp",
        kind="openai",
        base_url="http://127.0.0.1:8080/v1",
        display_name="llama.cpp server (local)",
        local=True,
        disabled=True,
    ),
]

# --- models ---------------------------------------------------------------------------------------
# OpenRouter id -> the first-party upstream model name ("" = the maker has no API for it).
# None means "derive": OpenAI/Google/Z.ai/Moonshot/DashScope/Mistral use the slug, Anthropic
# and xAI the slug with dots as dashes.
MODELS: dict[str, str | None] = {
    "anthropic/claude-opus-4.6": None,
    "anthropic/claude-sonnet-4.5": None,
    "anthropic/claude-sonnet-4.6": None,
    "anthropic/claude-opus-4.5": None,
    "anthropic/claude-haiku-4.5": None,
    "anthropic/claude-opus-4.1": None,
    "anthropic/claude-sonnet-4": None,
    "openai/gpt-5": None,
    "openai/gpt-5-mini": None,
    "openai/gpt-5-nano": None,
    "openai/gpt-5-pro": None,
    "openai/gpt-5.1": None,
    "openai/gpt-5.2": None,
    "openai/gpt-5.4": None,
    "openai/gpt-5.4-mini": None,
    "openai/gpt-5.1-codex": None,
    "openai/gpt-oss-120b": "",
    "openai/gpt-oss-20b": "",
    "google/gemini-3-flash-preview": None,
    "google/gemini-3.1-pro-preview": None,
    "google/gemini-2.5-pro": None,
    "google/gemini-2.5-flash": None,
    "google/gemini-2.5-flash-lite": None,
    "google/gemma-3-27b-it": "",
    "x-ai/grok-4.1-fast": "grok-4-1-fast-reasoning",
    "x-ai/grok-4": "grok-4-0709",
    "x-ai/grok-code-fast-1": "grok-code-fast-1",
    "x-ai/grok-4.20": "grok-4.20-0309-reasoning",
    "deepseek/deepseek-v3.2": "deepseek-chat",
    "deepseek/deepseek-r1-0528": "",
    "deepseek/deepseek-chat-v3.1": "",
    "deepseek/deepseek-v4-flash": "deepseek-v4-flash",
    "deepseek/deepseek-v4-pro": "deepseek-v4-pro",
    "moonshotai/kimi-k2.5": None,
    "moonshotai/kimi-k2-thinking": None,
    "moonshotai/kimi-k2-0905": "kimi-k2-0905-preview",
    "moonshotai/kimi-k2.6": None,
    "z-ai/glm-5": None,
    "z-ai/glm-5.1": None,
    "z-ai/glm-4.7": None,
    "z-ai/glm-4.6": None,
    "z-ai/glm-4.5-air": None,
    "minimax/minimax-m2.5": "MiniMax-M2.5",
    "minimax/minimax-m2.1": "MiniMax-M2.1",
    "minimax/minimax-m2": "MiniMax-M2",
    "minimax/minimax-m2.7": "MiniMax-M2.7",
    "qwen/qwen3-235b-a22b-2507": "qwen3-235b-a22b-instruct-2507",
    "qwen/qwen3-235b-a22b-thinking-2507": None,
    "qwen/qwen3-coder": "qwen3-coder-plus",
    "qwen/qwen3-30b-a3b": None,
    "qwen/qwen3-32b": None,
    "qwen/qwen3-next-80b-a3b-instruct": None,
    "qwen/qwen3-max": None,
    "qwen/qwen3-coder-next": "",
    "qwen/qwen3.5-397b-a17b": None,
    "meta-llama/llama-4-maverick": "",
    "meta-llama/llama-4-scout": "",
    "meta-llama/llama-3.3-70b-instruct": "",
    "mistralai/mistral-large-2512": None,
    "mistralai/mistral-medium-3.1": "mistral-medium-2508",
    "mistralai/mistral-small-3.2-24b-instruct": "mistral-small-2506",
    "mistralai/codestral-2508": None,
    "mistralai/devstral-2512": "devstral-2512",
    "mistralai/mistral-nemo": "open-mistral-nemo",
}

FIRST_PARTY = {p["first_party_for"][0]: p["name"] for p in PROVIDERS if p.get("first_party_for")}
LITELLM_PREFIX = {
    "openai": "",
    "anthropic": "",
    "google": "gemini/",
    "deepseek": "deepseek/",
    "moonshot": "moonshot/",
    "zai": "zai/",
    "minimax": "minimax/",
    "dashscope": "dashscope/",
    "xai": "xai/",
    "mistral": "mistral/",
}
# Third-party hosts of open models: the LiteLLM key prefix and the models.dev provider id.
HOSTS = {
    "together": ("together_ai/", "togetherai"),
    "fireworks": ("fireworks_ai/accounts/fireworks/models/", "fireworks-ai"),
    "deepinfra": ("deepinfra/", "deepinfra"),
    "groq": ("groq/", "groq"),
    "novita": ("novita/", "novita-ai"),
    "siliconflow": (None, "siliconflow"),
}
QUANT = re.compile(r"[-_](fp8|fp4|int8|int4|bf16|fp16)$", re.I)


def per_mtok(value: Any, scale: Decimal = Decimal(1_000_000)) -> str | None:
    """USD per token (float or string) -> USD per million tokens, as a short decimal string."""
    if value is None or value == "":
        return None
    amount = (Decimal(str(value)) * scale).quantize(Decimal("0.0001")).normalize()
    return format(amount, "f")


def load_snapshots(shared: Path) -> list[tuple[str, dict[str, Any]]]:
    files = sorted(
        (shared / "data/openrouter_models/jvrck_openrouterlist").glob("openrouter_api_v1_models_*.json")
    )
    out = []
    for f in files:
        stamp = f.stem.rsplit("_", 1)[1]
        out.append((stamp, {m["id"]: m for m in json.loads(f.read_text())["data"]}))
    return out[::-1]  # newest first


def openrouter_pricing(m: dict[str, Any]) -> dict[str, str]:
    p = m["pricing"]
    out = {
        "prompt": per_mtok(p.get("prompt")),
        "completion": per_mtok(p.get("completion")),
        "cache_read": per_mtok(p.get("input_cache_read")),
        "cache_write": per_mtok(p.get("input_cache_write")),
    }
    return {k: v for k, v in out.items() if v is not None}


def litellm_pricing(entry: dict[str, Any]) -> dict[str, str] | None:
    if entry.get("input_cost_per_token") is None or entry.get("output_cost_per_token") is None:
        return None
    out = {
        "prompt": per_mtok(entry["input_cost_per_token"]),
        "completion": per_mtok(entry["output_cost_per_token"]),
        "cache_read": per_mtok(entry.get("cache_read_input_token_cost")),
        "cache_write": per_mtok(entry.get("cache_creation_input_token_cost")),
    }
    return {k: v for k, v in out.items() if v is not None}


def models_dev_pricing(entry: dict[str, Any]) -> dict[str, str] | None:
    cost = entry.get("cost") or {}
    if cost.get("input") is None or cost.get("output") is None:
        return None
    one = Decimal(1)
    out = {
        "prompt": per_mtok(cost["input"], one),
        "completion": per_mtok(cost["output"], one),
        "cache_read": per_mtok(cost.get("cache_read"), one),
        "cache_write": per_mtok(cost.get("cache_write"), one),
    }
    return {k: v for k, v in out.items() if v is not None}


def first_party_upstream(model_id: str, spec: str | None) -> str | None:
    if spec == "":
        return None
    if spec is not None:
        return spec
    author, slug = model_id.split("/", 1)
    return slug.replace(".", "-") if author in ("anthropic", "x-ai") else slug


def host_matches(key_tail: str, names: set[str]) -> str | None:
    """The quantization suffix when ``key_tail`` names the model (``''`` if none), else None."""
    tail = key_tail.lower()
    quant = QUANT.search(tail)
    base = tail[: quant.start()] if quant else tail
    for suffix in ("", "-turbo"):
        if base.endswith(suffix) and base[: len(base) - len(suffix)] in names:
            return quant.group(1).lower() if quant else ""
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = parser.parse_args()
    shared: Path = args.shared
    snapshots = load_snapshots(shared)
    litellm = json.loads(
        (shared / "data/llm_prices/litellm/model_prices_and_context_window.json").read_text()
    )
    models_dev = json.loads((shared / "data/llm_prices/models_dev/models_dev_providers.json").read_text())
    with (shared / "data/model_metadata/openrouter_author_country.csv").open() as fh:
        countries = {r["author_slug"]: r for r in csv.DictReader(fh)}
    moe: dict[str, dict[str, str]] = {}
    with (shared / "data/model_metadata/moe_architecture.csv").open() as fh:
        for row in csv.DictReader(fh):
            for or_id in row["openrouter_ids_seen"].split():
                moe.setdefault(or_id, row)
    litellm_lower = {k.lower(): (k, v) for k, v in litellm.items() if isinstance(v, dict)}

    models_out = []
    for model_id, fp_spec in MODELS.items():
        found = next(((stamp, snap[model_id]) for stamp, snap in snapshots if model_id in snap), None)
        if found is None:
            raise SystemExit(f"{model_id}: not in any OpenRouter snapshot")
        stamp, m = found
        author = model_id.split("/", 1)[0]
        country = countries[author]["country_iso2"]
        hf = m.get("hugging_face_id") or None
        arch: dict[str, Any] = {"kind": "unknown"}
        row = moe.get(model_id)
        if row:
            arch = {
                "kind": "moe",
                "total_params_b": row["total_params_b"] or None,
                "active_params_b": row["active_params_b"] or None,
                "source": "shared/data/model_metadata/moe_architecture.csv: " + row["sources"][:160],
            }
        elif hf and re.search(r"(\d+)b\b", hf.lower()) and not re.search(r"-a\d+b", hf.lower()):
            size = re.search(r"(\d+(?:\.\d+)?)b\b", hf.lower())
            assert size is not None
            arch = {
                "kind": "dense",
                "total_params_b": size.group(1),
                "active_params_b": size.group(1),
                "source": f"parameter count in the Hugging Face id {hf}",
            }
        # OpenRouter's listing date: one consistent rule (the MoE table's dates are per family)
        release = datetime.fromtimestamp(m["created"], UTC).date().isoformat()
        tokenizer = m["architecture"].get("tokenizer")
        endpoints: list[dict[str, Any]] = []

        fp_provider = FIRST_PARTY.get(author)
        upstream = first_party_upstream(model_id, fp_spec) if fp_provider else None
        if fp_provider and upstream:
            prefix = LITELLM_PREFIX[fp_provider]
            hit = litellm_lower.get((prefix + upstream).lower()) or litellm_lower.get(upstream.lower())
            pricing = litellm_pricing(hit[1]) if hit else None
            ep: dict[str, Any] = {"provider": fp_provider, "model": upstream}
            if hit and pricing:
                ep |= {
                    "pricing": pricing,
                    "price_source": f"{LITELLM_SRC} key {hit[0]}",
                    "price_date": LITELLM_DATE,
                    "max_output_tokens": hit[1].get("max_output_tokens"),
                }
            else:  # OpenRouter passes the maker's list price through for first-party-only models
                ep |= {
                    "pricing": openrouter_pricing(m),
                    "price_date": stamp,
                    "price_source": f"OpenRouter /api/v1/models snapshot {stamp} (jvrck/openrouterlist); "
                    "the maker's own price sheet was not in the LiteLLM table",
                    "max_output_tokens": m["top_provider"].get("max_completion_tokens"),
                }
            endpoints.append(ep)

        if hf:
            names = {
                hf.lower(),
                hf.split("/", 1)[1].lower(),
                model_id.lower(),
                model_id.split("/", 1)[1].lower(),
            }
            for host, (prefix, md_id) in HOSTS.items():
                ep = None
                if prefix:
                    for key_l, (key, entry) in sorted(litellm_lower.items()):
                        if not key_l.startswith(prefix.lower()) or entry.get("mode", "chat") != "chat":
                            continue
                        quant = host_matches(key[len(prefix) :], names)
                        pricing = litellm_pricing(entry) if quant is not None else None
                        if pricing:
                            ep = {
                                "provider": host,
                                "model": key[len(prefix) :],
                                "pricing": pricing,
                                "quantization": quant or None,
                                "max_output_tokens": entry.get("max_output_tokens"),
                                "context_length": entry.get("max_input_tokens"),
                                "price_source": f"{LITELLM_SRC} key {key}",
                                "price_date": LITELLM_DATE,
                            }
                            if not quant:
                                break
                if ep is None:
                    for key, entry in sorted(models_dev.get(md_id, {}).get("models", {}).items()):
                        pricing = models_dev_pricing(entry)
                        quant = host_matches(key.split("/")[-1] if md_id == "fireworks-ai" else key, names)
                        if quant is not None and pricing:
                            limit = entry.get("limit") or {}
                            ep = {
                                "provider": host,
                                "model": key,
                                "pricing": pricing,
                                "quantization": quant or None,
                                "max_output_tokens": limit.get("output"),
                                "context_length": limit.get("context"),
                                "price_source": f"{MODELS_DEV_SRC} providers/{md_id}/models/{key}",
                                "price_date": entry.get("last_updated") or MODELS_DEV_DATE,
                            }
                            break
                if ep is not None:
                    endpoints.append({k: v for k, v in ep.items() if v is not None})
            for local in ("vllm", "sglang"):
                endpoints.append(
                    {
                        "provider": local,
                        "model": hf,
                        "pricing": {"prompt": "0", "completion": "0"},
                        "price_source": "self-hosted: no per-token charge",
                        "price_date": stamp,
                    }
                )

        endpoints.append(
            {
                "provider": "openrouter",
                "model": model_id,
                "pricing": openrouter_pricing(m),
                "max_output_tokens": m["top_provider"].get("max_completion_tokens"),
                "price_source": f"OpenRouter /api/v1/models snapshot {stamp} (jvrck/openrouterlist)",
                "price_date": stamp,
            }
        )
        models_out.append(
            {
                "id": model_id,
                "name": m["name"],
                "author": author,
                "author_country": country or None,
                "open_weights": hf is not None,
                "architecture": arch,
                "context_length": m["context_length"],
                "input_modalities": m["architecture"]["input_modalities"],
                "output_modalities": m["architecture"]["output_modalities"],
                "tokenizer": tokenizer,
                "release_date": release,
                "description": m.get("description") or None,
                "hugging_face_id": hf,
                "endpoints": [{k: v for k, v in e.items() if v is not None} for e in endpoints],
            }
        )

    meta = {
        "generated_by": "scripts/build_catalog.py",
        "generated_on": date.today().isoformat(),
        "sources": {
            "openrouter": "github jvrck/openrouterlist data/output.json snapshots (MIT), "
            "newest containing each model",
            "litellm": f"{LITELLM_SRC} (MIT), gathered {LITELLM_DATE}",
            "models_dev": f"github anomalyco/models.dev {MODELS_DEV_SRC} (MIT)",
            "author_country": "shared/data/model_metadata/openrouter_author_country.csv "
            "(Epoch AI, Glama, OpenRouter)",
            "moe": "shared/data/model_metadata/moe_architecture.csv",
            "release_date": "the model's OpenRouter `created` date (listing day)",
            "open_weights": "true when OpenRouter lists a Hugging Face id",
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "providers.json").write_text(json.dumps({"meta": meta, "providers": PROVIDERS}, indent=1) + "\n")
    (OUT / "models.json").write_text(json.dumps({"meta": meta, "models": models_out}, indent=1) + "\n")
    print(
        f"wrote {len(PROVIDERS)} providers, {len(models_out)} models, "
        f"{sum(len(m['endpoints']) for m in models_out)} endpoints to {OUT}"
    )


if __name__ == "__main__":
    main()
