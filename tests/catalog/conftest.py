"""Fixtures for catalog tests: settings without a config file, and the shared reference data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tollway.config import Settings, parse_settings

# CI keeps a copy of shared/ next to the repository (../shared); the package itself never reads it.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SNAPSHOTS = SHARED_DATA / "openrouter_models" / "jvrck_openrouterlist"


def settings_in(tmp_path: Path, raw: dict[str, object] | None = None) -> Settings:
    """Settings as if read from ``tmp_path/tollway.yaml`` (so overrides resolve inside tmp_path)."""
    return parse_settings(raw or {}, source=str(tmp_path / "tollway.yaml"), env={})


@pytest.fixture
def newest_snapshot() -> Path:
    files = sorted(SNAPSHOTS.glob("openrouter_api_v1_models_*.json"))
    if not files:
        pytest.skip(f"reference snapshots not found under {SNAPSHOTS}")
    return files[-1]
