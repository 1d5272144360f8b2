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

from pathlib import Path
from typing import Any

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


def model_entries() -> list[dict[str, Any]]:
    out = []
    for model_id, meta in load_data()["models"].items():
        pricing: dict[str, Any] = {"prompt": str(meta["prompt"]), "completion": str(meta["completion"])}
        if meta.get("cache_read") is not None:
            pricing["cache_read"] = str(meta["cache_read"])
        endpoints = [{"provider": name, "model": model_id.split("/", 1)[1], "pricing": pricing,
                      "price_source": meta["price_source"]}
                     for name in endpoints_for(model_id, meta["open_weights"])]
        out.append({"id": model_id, "name": meta["name"], "author": meta["author"],
                    "author_country": meta["author_country"], "open_weights": meta["open_weights"],
                    "endpoints": endpoints})
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
