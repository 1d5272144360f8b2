"""Distil the public data in ../shared/data into ``src/tollway/demo/data/workload.json``.

The demo package never reads ../shared at run time; it ships the few numbers it needs:

* the weekly model mix (token and request counts per model, average request sizes and
  cache-hit share) of OpenRouter's public rankings, 10 Nov 2025 - 22 Feb 2026: the weeks in
  which Chinese-authored models overtook US-authored ones
  (``openrouter_rankings/openrouter_top_models_weekly_2025-11_to_2026-05.csv``);
* each model's list prices (USD/Mtok) from the OpenRouter ``/api/v1/models`` snapshot of
  2026-02-22, falling back to the rankings file's price columns;
* the *shapes* of request sizes (quantiles of size / mean) of three public traces:
  conversation (Azure LLM inference 2023, conv), coding (Azure, code) and agentic sessions
  (Mooncake FAST'25 conversation trace: long, mostly-cached prompts).

Run: ``python scripts/build_demo_data.py [--data ../shared/data]``.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "tollway" / "demo" / "data" / "workload.json"
LAST_WEEK = "2026-02-16"  # 16-22 Feb 2026, the second week of the news reports
QUANTILES = 40  # points of each size shape
ROUTERS = ("openrouter/",)  # stealth/router models: no author to rank

# Model metadata the rankings file lacks (open weights); authors' countries come from it.
OPEN_WEIGHTS = {"deepseek", "moonshotai", "minimax", "z-ai", "xiaomi", "qwen", "arcee-ai", "meta-llama"}
OPEN_WEIGHT_IDS = {"openai/gpt-oss-120b", "openai/gpt-oss-20b"}


def _snapshot_index(data: Path) -> dict[str, dict[str, Any]]:
    snap = data / "openrouter_models" / "jvrck_openrouterlist" / "openrouter_api_v1_models_2026-02-22.json"
    out: dict[str, dict[str, Any]] = {}
    for model in json.loads(snap.read_text())["data"]:
        out[model["canonical_slug"]] = model
        out.setdefault(model["id"], model)
    return out


def _public_id(slug: str, snapshot: dict[str, dict[str, Any]]) -> str:
    bare = slug.removesuffix(":free")
    model = snapshot.get(bare)
    public = model["id"] if model else bare
    for suffix in (":free", ":exacto", ":nitro"):
        public = public.removesuffix(suffix)
    return public


def _per_mtok(value: str | None) -> float | None:
    return round(float(value) * 1_000_000, 6) if value not in (None, "") else None


def build_weeks(data: Path, snapshot: dict[str, dict[str, Any]]) -> tuple[list[Any], dict[str, Any]]:
    path = data / "openrouter_rankings" / "openrouter_top_models_weekly_2025-11_to_2026-05.csv"
    weeks: dict[str, dict[str, dict[str, float]]] = {}
    models: dict[str, dict[str, Any]] = {}
    for row in csv.DictReader(path.open()):
        if row["week_start"] > LAST_WEEK or row["slug"].startswith(ROUTERS):
            continue
        model_id = _public_id(row["slug"], snapshot)
        week = weeks.setdefault(row["week_start"], {})
        cell = week.setdefault(model_id, {"tokens": 0, "requests": 0, "prompt": 0, "completion": 0,
                                          "cached": 0})
        tokens = int(row["total_tokens"])
        prompt = int(row["prompt_tokens"] or 0)
        completion = int(row["completion_tokens"] or 0)
        requests = int(row["request_count"] or 0)
        cell["tokens"] += tokens
        if requests:
            cell["requests"] += requests
            cell["prompt"] += prompt
            cell["completion"] += completion
            cell["cached"] += int(row["cached_tokens"] or 0)
        if model_id not in models:
            snap = snapshot.get(row["slug"].removesuffix(":free")) or snapshot.get(model_id) or {}
            pricing = snap.get("pricing", {})
            author = model_id.split("/", 1)[0]
            models[model_id] = {
                "name": (snap.get("name") or row["name"]).split(": ", 1)[-1].removesuffix(" (exacto)")
                .removesuffix(" (free)"),
                "author": author,
                "author_country": row["author_country_iso2"] or None,
                "open_weights": author in OPEN_WEIGHTS or model_id in OPEN_WEIGHT_IDS,
                "prompt": _per_mtok(pricing.get("prompt")) if pricing else float(row["prompt_price_usd_per_mtok"]),
                "completion": _per_mtok(pricing.get("completion")) if pricing
                else float(row["completion_price_usd_per_mtok"]),
                "cache_read": _per_mtok(pricing.get("input_cache_read")) if pricing
                else _float_or_none(row["cache_read_price_usd_per_mtok"]),
                "price_source": "openrouter /api/v1/models 2026-02-22" if pricing
                else "openrouter rankings file (price at the time)",
            }
    out = []
    for start in sorted(weeks):
        cells = {}
        for model_id, c in sorted(weeks[start].items(), key=lambda kv: -kv[1]["tokens"]):
            requests = int(c["requests"])
            cells[model_id] = {
                "tokens": int(c["tokens"]),
                "requests": requests,
                "avg_prompt": round(c["prompt"] / requests, 1) if requests else None,
                "avg_completion": round(c["completion"] / requests, 1) if requests else None,
                "cache_share": round(c["cached"] / c["prompt"], 4) if c["prompt"] else 0.0,
            }
        out.append({"start": start, "models": cells})
    return out, models


def _float_or_none(value: str) -> float | None:
    return float(value) if value else None


def _shape(values: list[int]) -> list[float]:
    """Quantiles of value / mean: multiply by a model's average size to get a sample."""
    values = sorted(v for v in values if v > 0)
    mean = sum(values) / len(values)
    n = len(values)
    return [round(values[min(n - 1, int((i + 0.5) / QUANTILES * n))] / mean, 4) for i in range(QUANTILES)]


def build_shapes(data: Path) -> dict[str, Any]:
    traces = data / "request_traces"
    shapes: dict[str, Any] = {}
    for kind, name in (("conversation", "AzureLLMInferenceTrace_conv.csv"),
                       ("coding", "AzureLLMInferenceTrace_code.csv")):
        rows = list(csv.DictReader((traces / "azure_llm_inference_2023" / name).open()))
        shapes[kind] = {"prompt": _shape([int(r["ContextTokens"]) for r in rows]),
                        "completion": _shape([int(r["GeneratedTokens"]) for r in rows]),
                        "source": f"Azure LLM inference trace 2023 ({name}), CC-BY 4.0, Patel et al. ISCA'24"}
    lines = [json.loads(line) for line in (traces / "mooncake_fast25" / "conversation_trace.jsonl").open()]
    shapes["agentic"] = {"prompt": _shape([r["input_length"] for r in lines]),
                         "completion": _shape([r["output_length"] for r in lines]),
                         "source": "Mooncake FAST'25 conversation trace (Kimi production), Apache-2.0"}
    return shapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    snapshot = _snapshot_index(args.data)
    weeks, models = build_weeks(args.data, snapshot)
    doc = {
        "about": "Distilled by scripts/build_demo_data.py from public data; see 'sources'.",
        "sources": {
            "weeks": "OpenRouter public rankings, weekly top models 2025-11-10..2026-02-22 "
                     "(github johnbean393/openrouter-inference-stats @02966a2e, flattened in "
                     "openrouter_top_models_weekly_2025-11_to_2026-05.csv); router/stealth models dropped, "
                     ":free variants merged into their model",
            "prices": "OpenRouter GET /api/v1/models snapshot 2026-02-22 (github jvrck/openrouterlist "
                      "@30ae7f9d, MIT), USD per million tokens",
            "author_country": "model_metadata/openrouter_author_country.csv (Epoch AI, Glama, OpenRouter)",
            "shapes": "request-size quantiles relative to the mean; see each shape's 'source'",
        },
        "weeks": weeks,
        "models": models,
        "shapes": build_shapes(args.data),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    print(f"wrote {OUT} ({len(weeks)} weeks, {len(models)} models)")


if __name__ == "__main__":
    main()
