"""Helpers for the analytics tests: ledgers with traffic, and the OpenRouter rankings data."""

from __future__ import annotations

import csv
import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tollway.config import Settings, parse_settings
from tollway.ledger.db import create_db_engine, migrate
from tollway.ledger.records import GenerationRecord
from tollway.ledger.rollups import apply_rollups
from tollway.ledger.writer import LedgerWriter

REPO_ROOT = Path(__file__).resolve().parents[2]
RANKINGS_DIR = REPO_ROOT.parent / "shared" / "data" / "openrouter_rankings" / "johnbean393_openrouter-inference-stats"

# Prices as listed on OpenRouter on 2026-02-22 (shared/data/openrouter_models/article_models_prices_2026-02.csv).
OPUS = {"id": "anthropic/claude-opus-4.6", "author": "anthropic", "author_country": "US", "open_weights": False,
        "endpoints": [{"provider": "anthropic", "model": "claude-opus-4-6",
                       "pricing": {"prompt": "5", "completion": "25", "cache_read": "0.5", "cache_write": "6.25"}}]}
MINIMAX = {"id": "minimax/minimax-m2.5", "author": "minimax", "author_country": "CN", "open_weights": True,
           "endpoints": [{"provider": "minimax", "model": "MiniMax-M2.5",
                          "pricing": {"prompt": "0.3", "completion": "1.1", "cache_read": "0.03"}}]}


PG_ADMIN_URL = os.environ.get("TOLLWAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards.  Fails (never skips) without PostgreSQL."""
    import psycopg

    name = "tollway_analytics_" + secrets.token_hex(6)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that uses it runs on a real SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        with postgres_database() as url:
            yield url


def settings_for(database: str, models: Sequence[dict[str, Any]] = (OPUS, MINIMAX)) -> Settings:
    """Test settings without the shipped catalog: every fact a test relies on is stated here."""
    return parse_settings({
        "database": database, "catalog": False,
        "providers": [{"name": "anthropic", "base_url": "https://api.anthropic.example/v1", "api_key": "x",
                       "hosting_country": "US"},
                      {"name": "minimax", "base_url": "https://api.minimax.example/v1", "api_key": "x",
                       "hosting_country": "SG"}],
        "models": list(models),
    }, source="test")


@contextmanager
def ledger(database: str) -> Iterator[Engine]:
    engine = create_db_engine(database)
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


def write(engine: Engine, records: Sequence[GenerationRecord], batch_size: int = 7) -> None:
    """Through the real writer with the rollup hook, in several batches (exercises upserts)."""
    writer = LedgerWriter(engine, batch_size=batch_size, hooks=[apply_rollups])
    for i in range(0, len(records), batch_size):
        for record in records[i:i + batch_size]:
            writer.submit(record)
        writer.flush()
    writer.close()


def record(n: int, at: datetime, model: str, **fields: Any) -> GenerationRecord:
    return GenerationRecord(id=f"gen-{n:08d}", key_id=fields.pop("key_id", None), created_at=at, model=model,
                            **fields)


def openrouter_weeks() -> list[dict[str, Any]]:
    """The weekly top-model rows from the raw JSON files, with each week's Monday.

    Files dated on a Sunday (back-filled) cover date-6..date; files dated on a Monday cover
    the 7 days before the date (shared/data/README.md, section 2).
    """
    rows = []
    for path in sorted(RANKINGS_DIR.glob("*.json")):
        snapshot = date.fromisoformat(path.stem)
        monday = snapshot - timedelta(days=6) if snapshot.weekday() == 6 else snapshot - timedelta(days=7)
        assert monday.weekday() == 0, path
        for model in json.loads(path.read_text())["models"]:
            # 14 rows (most of the 2026-05-04 week) have only the rounded page total, no
            # prompt/completion split; they carry no usable token counts and are left out.
            if model["prompt_tokens"] + model["completion_tokens"] > 0:
                rows.append({"week": monday, **model})
    assert rows, f"no rankings data under {RANKINGS_DIR}"
    return rows


def write_import_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Convert rankings rows to the aggregate import format (period_start per week)."""
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["period_start", "model", "prompt_tokens", "completion_tokens", "reasoning_tokens",
                      "cached_tokens", "requests"])
        for r in rows:
            out.writerow([r["week"].isoformat(), r["slug"], r["prompt_tokens"], r["completion_tokens"],
                          r["reasoning_tokens"], r["cached_tokens"], r["request_count"]])
    return path
