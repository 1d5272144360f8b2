"""The report and usage import/export commands, end to end on a real ledger."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import yaml
from click.testing import CliRunner

from tollway.cli.report import report
from tollway.cli.usage_io import export_cmd, import_cmd
from tollway.ledger.keys import create_key

from .helpers import MINIMAX, OPUS, db_url, ledger, record, write

__all__ = ["db_url"]

MON = datetime(2026, 2, 9, 8)


def _config(tmp_path: Path, database: str) -> str:
    path = tmp_path / "tollway.yaml"
    path.write_text(yaml.safe_dump({
        "database": database, "catalog": False,
        "providers": [{"name": "anthropic", "base_url": "https://a.example/v1", "api_key": "x"},
                      {"name": "minimax", "base_url": "https://m.example/v1", "api_key": "x"}],
        "models": [OPUS, MINIMAX]}))
    return str(path)


def _run(*args: str) -> str:
    command = {"report": report, "import": import_cmd, "export": export_cmd}[args[0]]
    result = CliRunner().invoke(command, list(args[1:]), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_import_events_rank_by_user_country_and_reimport(db_url: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, db_url)
    with ledger(db_url) as engine, engine.begin() as conn:
        keys = {c: create_key(conn, name=f"user-{c}-{i}", country=c)[0].id
                for i, c in enumerate(["US", "CN", "DE"])}
        keys["US2"] = create_key(conn, name="user-us-2", country="US")[0].id
    rows = []
    for i in range(120):
        owner = ["US", "CN", "DE", "US2"][i % 4]
        rows.append({"created_at": (MON + timedelta(hours=i)).isoformat() + "Z",
                     "model": "moonshotai/kimi-k2.5-0127" if i % 3 else OPUS["id"],
                     "prompt_tokens": 1000 + i, "completion_tokens": 10 * i, "cost_usd": "0.000123",
                     "key_id": keys[owner], "app": "https://cline.bot", "session_id": f"t{i // 10}"})
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = _run("import", str(path), "--config", cfg)
    assert "imported 120 rows" in out
    assert "already imported" in _run("import", str(path), "--config", cfg)

    doc = json.loads(_run("report", "rankings", "--config", cfg, "--by", "user-country", "--period", "total",
                          "--json"))
    tokens: dict[str, int] = defaultdict(int)
    for i, r in enumerate(rows):
        tokens[{"US2": "US"}.get(["US", "CN", "DE", "US2"][i % 4], ["US", "CN", "DE", "US2"][i % 4])] += \
            r["prompt_tokens"] + r["completion_tokens"]
    got = {r["key"]: r for r in doc["rows"]}
    assert {k: v["total_tokens"] for k, v in got.items()} == dict(tokens)
    assert got["US"]["users"] == 2 and got["US"]["user_share"] == 0.5
    assert got["CN"]["cost_nanousd"] == 30 * 123_000  # "0.000123" exactly, not through a float
    assert doc["by"] == "user-country" and doc["period"] == "total"

    by_origin = json.loads(_run("report", "rankings", "--config", cfg, "--by", "origin", "--json"))
    origin = {r["key"]: r["total_tokens"] for r in by_origin["rows"]}
    # Kimi K2.5 is not in this config: attributed by its author prefix, moonshotai -> CN.
    assert origin["CN"] == sum(r["prompt_tokens"] + r["completion_tokens"] for i, r in enumerate(rows) if i % 3)
    text = _run("report", "rankings", "--config", cfg, "--by", "app")
    assert "https://cline.bot" in text
    tasks = json.loads(_run("report", "tasks", "--config", cfg, "--json"))
    assert tasks["tasks"]["tasks"] == 12
    assert tasks["requests"]["requests"] == 120


def test_export_parquet_and_scan_it_with_duckdb(db_url: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, db_url)
    records = [record(i, MON + timedelta(hours=7 * i), [OPUS["id"], MINIMAX["id"], "z-ai/glm-5"][i % 3],
                      provider=["anthropic", "minimax", None][i % 3], key_id=f"k{i % 2}",
                      prompt_tokens=10_000 + 31 * i, completion_tokens=400 + i, cached_tokens=5_000,
                      cost_nanousd=123_456_789 + i, status="error" if i % 17 == 0 else "success")
               for i in range(200)]
    with ledger(db_url) as engine:
        write(engine, records, batch_size=64)
    out = tmp_path / "ledger.parquet"
    assert "wrote 200 rows" in _run("export", "--config", cfg, "--format", "parquet", "--out", str(out))
    for by in ("model", "origin", "provider"):
        args = ["rankings", "--config", cfg, "--by", by, "--period", "week", "--json"]
        from_rollups = json.loads(_run("report", *args))
        from_parquet = json.loads(_run("report", *args, "--parquet", str(out)))
        assert from_parquet == from_rollups
        assert sum(p["total_tokens"] for p in from_rollups["periods"]) == \
            sum(r.prompt_tokens + r.completion_tokens for r in records)
    # The export is in the import format: importing it elsewhere gives the same totals.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    other_cfg = _config(tmp_path / "o", other) if (tmp_path / "o").mkdir() is None else ""
    _run("import", str(out), "--config", other_cfg)
    a = json.loads(_run("report", "rankings", "--config", cfg, "--period", "total", "--json"))["periods"]
    b = json.loads(_run("report", "rankings", "--config", other_cfg, "--period", "total", "--json"))["periods"]
    assert [(p["total_tokens"], p["cost_nanousd"], p["requests"]) for p in a] == \
        [(p["total_tokens"], p["cost_nanousd"], p["requests"]) for p in b]


def test_png_chart_and_what_if_text(db_url: str, tmp_path: Path) -> None:
    cfg = _config(tmp_path, db_url)
    records = [record(i, MON + timedelta(days=i % 21), OPUS["id"], prompt_tokens=1_000_000,
                      cost_nanousd=5 * 10**9) for i in range(42)]
    with ledger(db_url) as engine:
        write(engine, records)
    png = tmp_path / "chart.png"
    _run("report", "rankings", "--config", cfg, "--by", "model", "--png", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    png2 = tmp_path / "origin.png"
    _run("report", "rankings", "--config", cfg, "--by", "origin", "--png", str(png2), "--json")
    assert png2.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = _run("report", "cost", "--config", cfg, "--what-if", MINIMAX["id"], "--from", "2026-02-09",
                "--to", "2026-02-15")
    assert "$70.00" in text  # 14 requests x 1M input tokens x $5
    assert "$4.20, 16.7x less" in text
    bad = CliRunner().invoke(report, ["rankings", "--config", cfg, "--from", "2026-03-01", "--to", "2026-02-01"])
    assert bad.exit_code != 0 and "is after" in bad.output
