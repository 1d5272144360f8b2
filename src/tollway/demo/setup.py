"""The demo's providers, models and ``tollway.yaml``.

Providers are simulated stand-ins for real ones (``sim-anthropic`` for Anthropic...),
each with a latency/error profile; models carry the public list prices of
``data/workload.json``.  Every model has a first-party endpoint and, where real hosts
exist (open weights, Claude on a cloud, Gemini on Vertex), a second one, so fallbacks
have somewhere to go.

The written config sets ``catalog: false``: the demo must never route to a real
provider, even when the shell happens to hold provider API keys.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import yaml

from tollway.demo.fleet import Fleet, Profile, SimProvider
from tollway.demo.workload import load_data

# Real latencies (seconds to first token, tokens/s) divided by this, so weeks fit in a minute.
TIME_SCALE = 100.0
DEMO_API_KEY = "sim-not-a-real-key"  # sent to the simulated providers; they ignore it
LOCAL_MODEL_ID = "huggingfacetb/smollm2-135m-instruct"
LOCAL_PROVIDER = "local"


def _profile(ttft_s: float, tokens_per_s: float, error_rate: float) -> Profile:
    return Profile(ttft_s=ttft_s / TIME_SCALE, tokens_per_s=tokens_per_s * TIME_SCALE, error_rate=error_rate)


# (name, vendor, native wire format, hosting country, profile, first party for authors)
SIM_PROVIDERS: tuple[SimProvider, ...] = (
    SimProvider("sim-anthropic", "Anthropic (simulated)", "anthropic", "US", _profile(1.6, 60, 0.06),
                ("anthropic",)),
    SimProvider("sim-vertex", "Google Vertex (simulated)", "anthropic", "US", _profile(2.0, 55, 0.02)),
    SimProvider("sim-google", "Google AI Studio (simulated)", "gemini", "US", _profile(0.8, 140, 0.03),
                ("google",)),
    SimProvider("sim-xai", "xAI (simulated)", "openai", "US", _profile(0.6, 150, 0.02), ("x-ai",)),
    SimProvider("sim-deepseek", "DeepSeek (simulated)", "openai", "CN", _profile(1.5, 35, 0.08),
                ("deepseek",)),
    SimProvider("sim-moonshot", "Moonshot AI (simulated)", "openai", "CN", _profile(1.2, 45, 0.05),
                ("moonshotai",)),
    SimProvider("sim-minimax", "MiniMax (simulated)", "openai", "CN", _profile(1.0, 80, 0.05), ("minimax",)),
    SimProvider("sim-zai", "Z.ai (simulated)", "openai", "CN", _profile(1.4, 50, 0.07), ("z-ai",)),
    SimProvider("sim-xiaomi", "Xiaomi MiMo (simulated)", "openai", "CN", _profile(0.7, 120, 0.04),
                ("xiaomi",)),
    SimProvider("sim-deepinfra", "DeepInfra (simulated)", "openai", "US", _profile(0.9, 70, 0.02)),
    SimProvider("sim-together", "Together AI (simulated)", "openai", "US", _profile(0.7, 90, 0.02),
                ("arcee-ai",)),
)
_SECOND_HOST = {"anthropic": "sim-vertex", "google": None, "x-ai": None}


def effective_kind(provider: SimProvider, available: set[str]) -> str:
    """The provider's own wire format if tollway has that adapter, else its OpenAI-compatible layer."""
    return provider.kind if provider.kind in available else "openai"


def base_url(fleet: Fleet, provider: SimProvider, kind: str) -> str:
    """The vendors' own URL layout: the adapters for Anthropic and Gemini take the API root."""
    root = f"http://127.0.0.1:{fleet.ports[provider.name]}"
    if kind != "openai":
        return root
    if provider.kind == "gemini":  # Google's OpenAI-compatible layer
        return root + "/v1beta/openai"
    return root + "/v1"


def endpoints_for(model_id: str, open_weights: bool) -> list[str]:
    """Provider names serving a model, preferred first."""
    author = model_id.split("/", 1)[0]
    first = [p.name for p in SIM_PROVIDERS if author in p.first_party_for]
    if open_weights:
        hosts = ["sim-deepinfra", "sim-together"]
    else:
        second = _SECOND_HOST.get(author)
        hosts = [second] if second else []
    return [*first, *(h for h in hosts if h not in first)] or ["sim-deepinfra"]


def provider_entries(fleet: Fleet, available: set[str]) -> list[dict[str, Any]]:
    out = []
    for provider in SIM_PROVIDERS:
        kind = effective_kind(provider, available)
        out.append({"name": provider.name, "kind": kind, "base_url": base_url(fleet, provider, kind),
                    "api_key": DEMO_API_KEY, "display_name": provider.display_name,
                    "hosting_country": provider.hosting_country,
                    "notes": "simulated by `tollway demo` on loopback; not a real provider"})
    return out


# The real provider each simulated one stands for: its endpoint's price in the shipped catalog
# is the simulated endpoint's price (Vertex resells Claude at Anthropic's list price).
REAL_PROVIDER = {"sim-anthropic": "anthropic", "sim-vertex": "anthropic", "sim-google": "google",
                 "sim-xai": "xai", "sim-deepseek": "deepseek", "sim-moonshot": "moonshot",
                 "sim-minimax": "minimax", "sim-zai": "zai", "sim-deepinfra": "deepinfra",
                 "sim-together": "together"}
_CATALOG_FIELDS = ("name", "author", "author_country", "open_weights", "architecture", "context_length",
                   "input_modalities", "output_modalities", "tokenizer", "release_date", "description",
                   "hugging_face_id")


def shipped_models() -> dict[str, dict[str, Any]]:
    """The shipped catalog's model entries by id (the demo's metadata and prices)."""
    raw = resources.files("tollway.catalog").joinpath("data", "models.json").read_bytes()
    return {m["id"]: m for m in orjson.loads(raw)["models"]}


def _endpoint_price(provider: str, shipped: dict[str, Any] | None,
                    workload_meta: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(pricing, price_source) of one simulated endpoint.

    The shipped catalog's price at the real provider the simulated one stands for, else the
    catalog's first-party (first listed) endpoint; models the catalog lacks keep OpenRouter's
    list price from the workload data.
    """
    if shipped is not None:
        endpoints = [e for e in shipped.get("endpoints", []) if e["provider"] != "openrouter"]
        real = REAL_PROVIDER.get(provider)
        chosen = next((e for e in endpoints if e["provider"] == real), endpoints[0] if endpoints else None)
        if chosen is not None:
            source = f"shipped catalog, {chosen['provider']} endpoint"
            if chosen.get("price_source"):
                source += f" ({chosen['price_source']})"
            return dict(chosen["pricing"]), source
    pricing: dict[str, Any] = {"prompt": str(workload_meta["prompt"]),
                               "completion": str(workload_meta["completion"])}
    if workload_meta.get("cache_read") is not None:
        pricing["cache_read"] = str(workload_meta["cache_read"])
    return pricing, str(workload_meta["price_source"])


def model_entries() -> list[dict[str, Any]]:
    """The workload's models with the shipped catalog's metadata and prices where it has them."""
    catalog = shipped_models()
    out = []
    for model_id, meta in load_data()["models"].items():
        shipped = catalog.get(model_id)
        entry: dict[str, Any] = {"id": model_id, "name": meta["name"], "author": meta["author"],
                                 "author_country": meta["author_country"], "open_weights": meta["open_weights"]}
        if shipped is not None:
            entry.update({k: shipped[k] for k in _CATALOG_FIELDS if shipped.get(k) is not None})
        endpoints = []
        for name in endpoints_for(model_id, meta["open_weights"]):
            pricing, source = _endpoint_price(name, shipped, meta)
            endpoints.append({"provider": name, "model": model_id.split("/", 1)[1], "pricing": pricing,
                              "price_source": source})
        entry["endpoints"] = endpoints
        out.append(entry)
    return out


def local_entries(url: str, upstream_model: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The provider users keep: ``kind: openai`` at a local llama.cpp (or vLLM, Ollama) URL."""
    provider = {"name": LOCAL_PROVIDER, "kind": "openai", "base_url": url, "local": True,
                "display_name": "llama.cpp on this machine (real model)"}
    model = {"id": LOCAL_MODEL_ID, "name": "SmolLM2 135M Instruct (Q4_1, local)", "author": "huggingfacetb",
             "author_country": "US", "open_weights": True,
             "endpoints": [{"provider": LOCAL_PROVIDER, "model": upstream_model,
                            "pricing": {"prompt": "0", "completion": "0"}}]}
    return provider, model


def config_document(fleet: Fleet, database: str, available: set[str],
                    local: tuple[dict[str, Any], dict[str, Any]] | None = None) -> dict[str, Any]:
    """The demo's ``tollway.yaml`` as a mapping."""
    providers = provider_entries(fleet, available)
    models = model_entries()
    if local is not None:
        providers.append(local[0])
        models.append(local[1])
    return {"database": database, "catalog": False, "providers": providers, "models": models,
            "timeouts": {"connect": 5, "first_byte": 30, "idle": 30, "total": 120},
            "ledger": {"batch_size": 500, "flush_interval_ms": 20}}


def write_config(path: Path, doc: dict[str, Any]) -> None:
    header = ("# Written by `tollway demo`: simulated providers on loopback ports (they stop with\n"
              "# the demo), and the demo's ledger.  Every tollway command works on it:\n"
              f"#   tollway usage summary --config {path}\n")
    path.write_text(header + yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
