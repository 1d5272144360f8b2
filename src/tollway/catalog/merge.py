"""Merging the user's config over the shipped catalog.

Placeholder until the shipped catalog lands: with no data files, the merge is the
user's entries alone.
"""

from __future__ import annotations

from tollway.config import ModelConfig, ProviderConfig, Settings


def merged_entries(settings: Settings) -> tuple[list[ProviderConfig], list[ModelConfig]]:
    return list(settings.providers), list(settings.models)
