"""The demo's models: the shipped catalog's metadata, and its price at the real provider each
simulated one stands for."""

from __future__ import annotations

from tollway.demo.setup import REAL_PROVIDER, model_entries, shipped_models
from tollway.demo.workload import load_data


def test_prices_are_the_shipped_catalogs_at_the_matching_provider() -> None:
    shipped = shipped_models()
    entries = {m["id"]: m for m in model_entries()}
    assert set(entries) == set(load_data()["models"])
    checked = 0
    for model_id, entry in entries.items():
        real = {e["provider"]: e["pricing"] for e in shipped.get(model_id, {}).get("endpoints", [])}
        for endpoint in entry["endpoints"]:
            if REAL_PROVIDER.get(endpoint["provider"]) in real:
                assert endpoint["pricing"] == real[REAL_PROVIDER[endpoint["provider"]]], (model_id, endpoint)
                checked += 1
    assert checked >= 20
    minimax = {e["provider"]: e["pricing"] for e in entries["minimax/minimax-m2.5"]["endpoints"]}
    assert minimax["sim-deepinfra"]["prompt"] == "0.15" and minimax["sim-deepinfra"]["completion"] == "1.15"


def test_metadata_comes_from_the_catalog_and_models_it_lacks_keep_openrouters_price() -> None:
    entries = {m["id"]: m for m in model_entries()}
    m25 = entries["minimax/minimax-m2.5"]
    assert m25["context_length"] == 204800 and m25["release_date"] == "2026-02-12" and m25["description"]
    missing = [i for i in entries if i not in shipped_models()]
    assert missing, "the workload has models the catalog lacks"
    for model_id in missing:
        meta = load_data()["models"][model_id]
        prices = entries[model_id]["endpoints"][0]["pricing"]
        assert (prices["prompt"], prices["completion"]) == (str(meta["prompt"]), str(meta["completion"]))
