"""`catalog import`: OpenRouter models JSON -> overrides file -> merged catalog."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import orjson

from tests.catalog.conftest import settings_in
from tollway.catalog import build_catalog
from tollway.catalog.overrides import apply_import, load_overrides, overrides_path, plan_import


def _payload(prompt: str, completion: str, context: int) -> dict[str, object]:
    return {
        "data": [
            {
                "id": "minimax/minimax-m2.5",
                "context_length": context,
                "pricing": {"prompt": prompt, "completion": completion},
            },
            {"id": "brand-new/model", "context_length": 1, "pricing": {"prompt": "0", "completion": "0"}},
        ]
    }


def test_import_updates_openrouter_prices_through_overrides(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    before = build_catalog(settings, env={})
    report = plan_import(
        before.models.values(),
        _payload("0.0000002", "0.000001", 300000),
        source="test.json",
        as_of=date(2026, 9, 1),
    )
    fields = {c.field: (c.old, c.new) for c in report.changes}
    assert fields["openrouter.prompt"] == (Decimal("0.27"), Decimal("0.2"))
    assert fields["openrouter.completion"] == (Decimal("1.08"), Decimal(1))
    assert fields["context_length"] == (204800, 300000)
    assert report.not_in_catalog == ("brand-new/model",)
    assert "anthropic/claude-opus-4.6" in report.missing_from_file

    apply_import(overrides_path(settings), report)
    after = build_catalog(settings, env={})
    model = after.models["minimax/minimax-m2.5"]
    endpoint = next(e for e in model.endpoints if e.provider == "openrouter")
    assert (endpoint.pricing.prompt, endpoint.pricing.completion) == (Decimal("0.2"), Decimal(1))
    assert endpoint.price_date == date(2026, 9, 1) and "catalog import" in (endpoint.price_source or "")
    assert (
        endpoint.max_output_tokens
        == next(e for e in before.models[model.id].endpoints if e.provider == "openrouter").max_output_tokens
    )
    assert model.context_length == 300000
    maker = next(e for e in model.endpoints if e.provider == "minimax")
    assert maker.pricing.prompt == Decimal("0.3")  # first-party price sheets are not OpenRouter's
    assert "brand-new/model" not in after.models

    again = plan_import(after.models.values(), _payload("0.0000002", "0.000001", 300000), source="test.json")
    assert again.changes == ()  # idempotent


def test_import_newest_snapshot_reports_and_applies(tmp_path: Path, newest_snapshot: Path) -> None:
    settings = settings_in(tmp_path)
    before = build_catalog(settings, env={})
    payload = orjson.loads(newest_snapshot.read_bytes())
    report = plan_import(before.models.values(), payload, source=newest_snapshot.name)
    # Models shipped from older snapshots (e.g. grok-4.1-fast) are gone from the newest one.
    assert "x-ai/grok-4.1-fast" in report.missing_from_file
    assert len(report.not_in_catalog) > 300
    path = overrides_path(settings)
    apply_import(path, report)
    after = build_catalog(settings, env={})
    assert len(after.models) == len(before.models)
    for model in after.models.values():
        for endpoint in model.endpoints:
            assert endpoint.price_source and endpoint.price_date
    # shipped OpenRouter prices come from this very snapshot, so re-importing changes nothing there
    changed = {c.model_id for c in report.changes}
    assert "anthropic/claude-opus-4.6" not in changed
    assert load_overrides(path).models == () or all(m.id in changed for m in load_overrides(path).models)
