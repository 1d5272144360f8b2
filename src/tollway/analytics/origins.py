"""Author slug -> country of the model's maker: the fallback after the catalog's ``author_country``.

Facts copied from the tollway reference data ``model_metadata/openrouter_author_country.csv``
(gathered 2026-11-29; per-row sources there: Epoch AI's model tables, glama.ai's provider
list, OpenRouter's ``/api/v1/providers`` ``headquarters`` and model descriptions).
Conventions pinned here: model *origin* is the maker's country, so Moonshot AI is CN
(OpenRouter's providers endpoint says SG for its international entity); community
fine-tuners are unknown; the routers ``openrouter`` and ``switchpoint`` are left out
because they are not model makers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from tollway.config import ModelConfig

UNKNOWN = "UNKNOWN"

# Read-only: a MappingProxyType, so nothing can change it at run time.
AUTHOR_COUNTRY: Mapping[str, str] = MappingProxyType(
    {
        "01-ai": "CN",
        "agentica-org": "US",
        "ai21": "IL",
        "alibaba": "CN",
        "all-hands": "US",
        "allenai": "US",
        "amazon": "US",
        "anthropic": "US",
        "arcee-ai": "US",
        "baidu": "CN",
        "bytedance": "CN",
        "bytedance-research": "CN",
        "bytedance-seed": "CN",
        "cognitivecomputations": "US",
        "cohere": "CA",
        "databricks": "US",
        "deepcogito": "US",
        "deepseek": "CN",
        "dots-studio": "CN",
        "eleutherai": "US",
        "essentialai": "US",
        "google": "US",
        "huggingfaceh4": "US",
        "ibm-granite": "US",
        "inception": "US",
        "inclusionai": "CN",
        "inflection": "US",
        "kwaipilot": "CN",
        "latitudegames": "US",
        "liquid": "US",
        "meituan": "CN",
        "meta": "US",
        "meta-llama": "US",
        "microsoft": "US",
        "minimax": "CN",
        "mistralai": "FR",
        "moonshotai": "CN",
        "morph": "US",
        "nex-agi": "CN",
        "nousresearch": "US",
        "nvidia": "US",
        "open-r1": "US",
        "openai": "US",
        "openchat": "CN",
        "opengvlab": "CN",
        "perceptron": "US",
        "perplexity": "US",
        "poolside": "US",
        "prime-intellect": "US",
        "qwen": "CN",
        "reka": "US",
        "rekaai": "US",
        "relace": "US",
        "sakana": "JP",
        "sarvamai": "IN",
        "scb10x": "TH",
        "shisa-ai": "JP",
        "stepfun": "CN",
        "stepfun-ai": "CN",
        "teknium": "US",
        "tencent": "CN",
        "thinkingmachines": "US",
        "thudm": "CN",
        "tngtech": "DE",
        "tokyotech-llm": "JP",
        "upstage": "KR",
        "writer": "US",
        "x-ai": "US",
        "xiaomi": "CN",
        "z-ai": "CN",
        "~anthropic": "US",
        "~deepseek": "CN",
        "~google": "US",
        "~moonshotai": "CN",
        "~openai": "US",
        "~x-ai": "US",
        "~z-ai": "CN",
    }
)

# OpenRouter permaslugs carry a release suffix (``-20260211``, ``-0127``) and variants
# (``:free``, ``:thinking``); the catalog lists the bare id.
_DATED_SUFFIX = re.compile(r"-(?:20\d{6}|\d{4})$")


def author_of(model_id: str) -> str:
    """The author prefix of an OpenRouter-style id (``moonshotai/kimi-k2.5`` -> ``moonshotai``)."""
    author = model_id.split("/", 1)[0] if "/" in model_id else model_id
    return author.lstrip("~")


def candidate_ids(model_id: str) -> list[str]:
    """Ids to try in the catalog, most specific first: as given, without variant, without date."""
    out = [model_id]
    base = model_id.split(":", 1)[0]
    if base not in out:
        out.append(base)
    undated = _DATED_SUFFIX.sub("", base)
    if undated not in out:
        out.append(undated)
    return out


def find_model(models: Mapping[str, ModelConfig], model_id: str) -> ModelConfig | None:
    """The catalog entry for a ledger or imported model id, tolerating dated permaslugs."""
    for candidate in candidate_ids(model_id):
        found = models.get(candidate)
        if found is not None:
            return found
    return None


def country_of_author(author: str) -> str:
    """The maker's ISO country from the fallback table, or ``UNKNOWN``."""
    return AUTHOR_COUNTRY.get(author, AUTHOR_COUNTRY.get("~" + author, UNKNOWN))
