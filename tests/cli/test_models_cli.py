"""`tollway models ...` and `tollway catalog import` through click's runner."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from tollway.cli.catalog import catalog
from tollway.cli.models import models

SNAPSHOTS = Path(__file__).resolve().parents[2].parent / "shared/data/openrouter_models/jvrck_openrouterlist"


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "tollway.yaml"
    path.write_text(f"database: sqlite:///{tmp_path / 't.db'}\n")
    return str(path)


def run(group: object, args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(group, args, env=env, catch_exceptions=False)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    return result.output


def test_compare_prints_the_makers_ratio(config: str) -> None:
    out = run(
        models,
        [
            "compare",
            "anthropic/claude-opus-4.6",
            "minimax/minimax-m2.5",
            "--provider",
            "maker",
            "--input-ratio",
            "3:1",
            "--config",
            config,
        ],
    )
    assert "16.7x on input tokens ($5.00 vs $0.30 per million)" in out
    data = orjson.loads(
        run(
            models,
            [
                "compare",
                "anthropic/claude-opus-4.6",
                "minimax/minimax-m2.5",
                "--provider",
                "maker",
                "--json",
                "--config",
                config,
            ],
        )
    )
    opus, m25 = data["models"]
    assert opus["provider"] == "anthropic" and m25["provider"] == "minimax"
    assert opus["input_ratio"].startswith("16.66") and opus["output_ratio"].startswith("20.83")


def test_compare_defaults_to_active_endpoints(config: str) -> None:
    env = {"ANTHROPIC_API_KEY": "a", "MINIMAX_API_KEY": "m"}
    data = orjson.loads(
        run(
            models,
            ["compare", "anthropic/claude-opus-4.6", "minimax/minimax-m2.5", "--json", "--config", config],
            env=env,
        )
    )
    assert [m["provider"] for m in data["models"]] == ["anthropic", "minimax"]
    assert all(m["active"] for m in data["models"])


def test_list_filters(config: str) -> None:
    rows = orjson.loads(
        run(
            models,
            [
                "list",
                "--all",
                "--origin",
                "CN",
                "--open-weights",
                "--json",
                "--sort",
                "context",
                "--config",
                config,
            ],
        )
    )
    assert rows and all(r["author_country"] == "CN" and r["open_weights"] for r in rows)
    contexts = [r["context_length"] for r in rows]
    assert contexts == sorted(contexts, reverse=True)
    assert {r["author"] for r in rows} >= {"deepseek", "moonshotai", "z-ai", "minimax", "qwen"}
    only = orjson.loads(run(models, ["list", "--json", "--config", config], env={"GROQ_API_KEY": "g"}))
    assert only and all(r["provider"] == "groq" for r in only)
    assert "no models" in run(models, ["list", "--config", config])


def test_show_and_unknown(config: str) -> None:
    out = run(models, ["show", "moonshotai/kimi-k2.5", "--config", config])
    assert "moonshot" in out and "CN" in out and "moe" in out
    result = CliRunner().invoke(models, ["show", "kimi-k2.5", "--config", config])
    assert result.exit_code != 0 and "moonshotai/kimi-k2.5" in result.output


def test_catalog_import_dry_run_then_write(config: str, tmp_path: Path) -> None:
    files = sorted(SNAPSHOTS.glob("openrouter_api_v1_models_*.json"))
    if not files:
        pytest.skip("reference snapshots not available")
    oldest_with_m25 = next(f for f in files if b'"minimax/minimax-m2.5"' in f.read_bytes())
    out = run(catalog, ["import", str(oldest_with_m25), "--dry-run", "--config", config])
    assert "minimax/minimax-m2.5: openrouter.prompt 0.27 -> 0.3" in out and "dry run" in out
    overrides = tmp_path / "catalog_overrides.yaml"
    assert not overrides.exists()
    out = run(catalog, ["import", str(oldest_with_m25), "--config", config])
    assert overrides.exists() and f"wrote {overrides}" in out
    shown = orjson.loads(run(models, ["show", "minimax/minimax-m2.5", "--json", "--config", config]))
    openrouter = next(e for e in shown["endpoints"] if e["provider"] == "openrouter")
    assert openrouter["pricing"]["prompt"] == "0.3" and openrouter["price_date"] == oldest_with_m25.stem[-10:]
    newest = run(catalog, ["import", str(files[-1]), "--config", config])
    assert "minimax/minimax-m2.5: openrouter.prompt 0.3 -> 0.27" in newest
