"""The catalog overrides file: where ``tollway catalog import`` keeps prices current.

The shipped catalog lives inside the installed package and is never written to (site-packages
may be read-only, and an upgrade would silently undo the edit).  Instead, an import writes
``catalog_overrides.yaml`` next to the user's config (or wherever ``catalog_overrides:`` in the
config points), and :func:`tollway.catalog.merge.merged_entries` merges it over the shipped data
and under the user's own ``providers:``/``models:``.  The file is plain config-shaped YAML
(``models: [{id, context_length, endpoints: [{provider, model, pricing...}]}]``), so it can be
read, diffed and edited by hand.

What an import changes, and why only that: an OpenRouter models list prices *OpenRouter's*
endpoint of each model, so the import updates each model's ``openrouter`` endpoint (prices,
with the file's date as ``price_date``) and the model's ``context_length``.  First-party and
third-party host prices come from their own price sheets and are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tollway.config import ConfigError, EndpointConfig, ModelConfig, Pricing, ProviderConfig, Settings

DEFAULT_OVERRIDES_FILE = "catalog_overrides.yaml"
OPENROUTER_PROVIDER = "openrouter"
_PRICE_FIELDS = {
    "prompt": "prompt",
    "completion": "completion",
    "cache_read": "input_cache_read",
    "cache_write": "input_cache_write",
}
_MILLION = Decimal(1_000_000)


class OverridesFile(BaseModel):
    """The file's shape: config-style providers/models plus where they came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str | None = None
    updated_at: str | None = None
    providers: tuple[ProviderConfig, ...] = ()
    models: tuple[ModelConfig, ...] = ()


def overrides_path(settings: Settings) -> Path:
    """``catalog_overrides`` from the config (relative to the config's folder), else the default
    file name in the config's folder (the current directory when there is no config file)."""
    source = Path(settings.source_path) if settings.source_path else None
    folder = source.parent if source is not None and source.suffix in (".yaml", ".yml") else Path()
    if settings.catalog_overrides:
        configured = Path(settings.catalog_overrides).expanduser()
        return configured if configured.is_absolute() else folder / configured
    return folder / DEFAULT_OVERRIDES_FILE


def load_overrides(path: Path) -> OverridesFile:
    """The overrides in ``path``; an absent file means no overrides."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return OverridesFile()
    try:
        raw = yaml.safe_load(text) or {}
        return OverridesFile.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(
            f"{path}: invalid catalog overrides ({exc}); fix or delete the file "
            "and re-run `tollway catalog import`"
        ) from None


@dataclass(frozen=True, slots=True)
class Change:
    """One field that an import changes."""

    model_id: str
    field: str  # "context_length" or "openrouter.prompt" etc.
    old: Decimal | int | None
    new: Decimal | int | None


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What importing an OpenRouter models file would change (or changed)."""

    source: str
    as_of: date
    changes: tuple[Change, ...]
    updated_models: tuple[ModelConfig, ...]  # the override entries for models that changed
    not_in_catalog: tuple[str, ...]  # ids in the file that the catalog doesn't have
    missing_from_file: tuple[str, ...]  # catalog models the file no longer lists
    skipped: tuple[str, ...] = field(default=())  # entries without usable prices


def _per_mtok(value: Any) -> Decimal | None:
    """OpenRouter's USD-per-token string -> USD per million tokens."""
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value)) * _MILLION
    except ArithmeticError:
        return None
    # -1 is OpenRouter's marker for "variable" (routers); it is not a price.
    return None if amount < 0 else amount.normalize()


def _same(old: Decimal | int | None, new: Decimal | int | None) -> bool:
    if old is None or new is None:
        return old is new
    return Decimal(old) == Decimal(new)


def plan_import(
    models: Iterable[ModelConfig], payload: Mapping[str, Any], *, source: str, as_of: date | None = None
) -> ImportReport:
    """Compare an OpenRouter ``/api/v1/models`` payload with the current (merged) catalog."""
    entries = payload.get("data")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: not an OpenRouter models list (expected a top-level 'data' array)")
    when = as_of or datetime.now(UTC).date()
    by_id = {e.get("id"): e for e in entries if isinstance(e, dict)}
    catalog = {m.id: m for m in models}
    changes: list[Change] = []
    updated: list[ModelConfig] = []
    skipped: list[str] = []
    for model_id, model in catalog.items():
        entry = by_id.get(model_id)
        if entry is None:
            continue
        model_changes: list[Change] = []
        update: dict[str, Any] = {"id": model_id}
        context = entry.get("context_length")
        if isinstance(context, int) and context > 0 and context != model.context_length:
            model_changes.append(Change(model_id, "context_length", model.context_length, context))
            update["context_length"] = context
        pricing_raw = entry.get("pricing") or {}
        new_prices = {ours: _per_mtok(pricing_raw.get(theirs)) for ours, theirs in _PRICE_FIELDS.items()}
        if new_prices["prompt"] is None or new_prices["completion"] is None:
            skipped.append(model_id)
        else:
            current = next((e for e in model.endpoints if e.provider == OPENROUTER_PROVIDER), None)
            old = current.pricing if current is not None else Pricing()
            price_changes = [
                Change(model_id, f"{OPENROUTER_PROVIDER}.{name}", getattr(old, name), value)
                for name, value in new_prices.items()
                if not _same(getattr(old, name), value)
            ]
            if price_changes or current is None:
                model_changes.extend(price_changes)
                update["endpoints"] = [
                    {
                        "provider": OPENROUTER_PROVIDER,
                        "model": current.model if current is not None else model_id,
                        # every price field, None included: a cache price the file no longer
                        # lists must be cleared, not inherited from the shipped entry
                        "pricing": new_prices,
                        "price_source": f"OpenRouter /api/v1/models via `tollway catalog import {source}`",
                        "price_date": when,
                    }
                ]
        if model_changes:
            changes.extend(model_changes)
            updated.append(ModelConfig.model_validate(update))
    return ImportReport(
        source=source,
        as_of=when,
        changes=tuple(changes),
        updated_models=tuple(updated),
        not_in_catalog=tuple(sorted(i for i in by_id if isinstance(i, str) and i not in catalog)),
        missing_from_file=tuple(sorted(i for i in catalog if i not in by_id)),
        skipped=tuple(skipped),
    )


def apply_import(path: Path, report: ImportReport) -> OverridesFile:
    """Merge the report's entries into the overrides file at ``path`` and write it."""
    from tollway.catalog.merge import merge_layers

    existing = load_overrides(path)
    providers, models = merge_layers(existing.providers, existing.models, (), report.updated_models)
    result = OverridesFile(
        source=report.source,
        updated_at=report.as_of.isoformat(),
        providers=tuple(providers),
        models=tuple(models),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(_dump(result), sort_keys=False, allow_unicode=True)
    header = (
        "# Written by `tollway catalog import`; merged over tollway's shipped catalog and under\n"
        "# your config's providers/models. Safe to edit; delete it to return to shipped prices.\n"
    )
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(header + text, encoding="utf-8")
    tmp.replace(path)  # atomic, so a crash never leaves half a file that the gateway can't parse
    return result


def _dump(overrides: OverridesFile) -> dict[str, Any]:
    """Only the fields each entry sets, so the file stays a sparse override, not a full copy."""

    def sparse(model: BaseModel) -> Any:
        out: dict[str, Any] = {}
        for name in model.model_fields_set:
            value = getattr(model, name)
            out[name] = _plain(value, sparse)
        return out

    return {
        k: _plain(v, sparse)
        for k, v in (
            ("source", overrides.source),
            ("updated_at", overrides.updated_at),
            ("providers", overrides.providers),
            ("models", overrides.models),
        )
        if v not in (None, ())
    }


def _plain(value: Any, sparse: Any) -> Any:
    if isinstance(value, BaseModel):
        return sparse(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, sparse) for v in value]
    if isinstance(value, Decimal):
        return str(value)  # exact; the loader parses it back into a Decimal
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "get_secret_value"):
        raise ConfigError("refusing to write an API key into the catalog overrides file")
    return value


def endpoint_for(model: ModelConfig, provider: str) -> EndpointConfig | None:
    """The model's first endpoint at ``provider`` (used by reports and tests)."""
    return next((e for e in model.endpoints if e.provider == provider), None)
