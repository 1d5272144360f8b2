"""What a newcomer meets first: busy ports, missing secrets, start-up lines, report output, help."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from tests.analytics.helpers import MINIMAX, OPUS, ledger, record, write
from tollway.cli import main
from tollway.config import load_settings
from tollway.server import describe_active_models

TOLLWAY = [sys.executable, "-m", "tollway"]
MON = datetime(2026, 2, 2, 8)


def _tollway(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TOLLWAY, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def taken_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _config(tmp_path: Path, **extra: object) -> Path:
    path = tmp_path / "tollway.yaml"
    path.write_text(yaml.safe_dump({
        "database": f"sqlite:///{tmp_path / 'ledger.db'}", "catalog": False,
        "providers": [{"name": "anthropic", "base_url": "https://a.example/v1", "api_key": "x"},
                      {"name": "minimax", "base_url": "https://m.example/v1", "api_key": "${MINIMAX_TEST_KEY}"}],
        "models": [OPUS, MINIMAX], **extra}))
    return path


@pytest.mark.parametrize("command", [["serve"], ["demo", "--no-serve", "--no-local"]])
def test_a_busy_port_says_so_and_how_to_choose_another(tmp_path: Path, taken_port: int,
                                                        command: list[str]) -> None:
    cfg = _config(tmp_path)
    args = [*command, "--port", str(taken_port)] + (["--config", str(cfg)] if command == ["serve"] else [])
    out = _tollway(*args, cwd=tmp_path)
    assert out.returncode != 0
    assert f"port {taken_port} on 127.0.0.1 is already in use" in out.stderr
    assert f"--port {taken_port + 1}" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout and len(out.stderr.splitlines()) <= 2


def test_keys_create_needs_no_provider_secret(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "MINIMAX_TEST_KEY"}
    out = subprocess.run([*TOLLWAY, "keys", "create", "--config", str(cfg), "--name", "alice"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].startswith("sk-tw-")


def test_start_line_names_active_models_or_how_to_add_one(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path), env={})
    line = describe_active_models(settings)
    # minimax's key is unset: only the Anthropic model is active.
    assert line.startswith("1 active model(s) on 1 provider(s) (anthropic): anthropic/claude-opus-4.6")
    none = _config(tmp_path, providers=[{"name": "minimax", "base_url": "https://m.example/v1",
                                          "api_key": "${MINIMAX_TEST_KEY}"}], models=[MINIMAX])
    line = describe_active_models(load_settings(none, env={}))
    assert line.startswith("no active model") and "MINIMAX_TEST_KEY" in line


@pytest.fixture
def traffic(tmp_path: Path) -> str:
    """Three weeks of traffic: Opus alone, then MiniMax overtaking it."""
    cfg = _config(tmp_path)
    records = [record(i, MON + timedelta(days=i % 21), OPUS["id"], prompt_tokens=1_000_000,
                      cost_nanousd=5 * 10**9) for i in range(21)]
    records += [record(100 + i, MON + timedelta(days=7 + i % 14), MINIMAX["id"], prompt_tokens=3_000_000,
                       cost_nanousd=9 * 10**8) for i in range(14)]
    with ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as engine:
        write(engine, records)
    return str(cfg)


def _run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env={"MINIMAX_TEST_KEY": "k"})
    assert result.exit_code == 0, result.output
    return result.output


def test_what_if_takes_both_spellings(traffic: str) -> None:
    spaced = _run("report", "cost", "--config", traffic, "--what-if", OPUS["id"], MINIMAX["id"], "--json")
    repeated = _run("report", "cost", "--config", traffic, "--what-if", OPUS["id"], "--what-if", MINIMAX["id"],
                    "--json")
    assert json.loads(spaced) == json.loads(repeated)
    assert [s["model"] for s in json.loads(spaced)["scenarios"]] == [OPUS["id"], MINIMAX["id"]]
    text = _run("report", "cost", "--config", traffic, "--what-if", MINIMAX["id"])
    assert "on 2 models (anthropic/claude-opus-4.6, minimax/minimax-m2.5)" in text


def test_total_is_a_ranking_without_moves_or_dates(traffic: str) -> None:
    text = _run("report", "rankings", "--config", traffic, "--period", "total", "--by", "origin")
    assert "total, all recorded usage" in text and " of 2026" not in text
    assert "new" not in text and "move" not in text
    assert "2 keys" in text and "top 5" not in text  # no concentration claim over two rows


def test_pivot_puts_the_weeks_in_one_table(traffic: str) -> None:
    text = _run("report", "rankings", "--config", traffic, "--by", "origin", "--pivot")
    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("│┃ ").replace("┃", "│").split("│")]

    header = next(cells(line) for line in text.splitlines() if line.startswith("┃"))
    rows = [cells(line) for line in text.splitlines() if re.match(r"^│ 2026-", line)]
    assert header == ["week", "tokens", "CN", "US"]  # the larger origin over the range first
    # Week 1: only Opus (US); then 7 Opus and 7 MiniMax requests a week, MiniMax 3x the tokens.
    assert rows == [["2026-02-02", "7.00M", "-", "100.0%"], ["2026-02-09", "28.00M", "75.0%", "25.0%"],
                    ["2026-02-16", "28.00M", "75.0%", "25.0%"]]
    assert text.count("┏") == 1


def test_usage_summary_rounds_cost_and_aligns(traffic: str) -> None:
    lines = _run("usage", "summary", "--config", traffic).splitlines()
    assert lines[-1].split() == ["cost", "$117.60"]  # 21 x $5 + 14 x $0.90
    assert len({len(line) for line in lines}) == 1  # one column of right-aligned values


def _all_commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                        click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _all_commands(sub, (*path, name))


def test_help_is_whole_and_every_option_explained() -> None:
    for path, command in _all_commands(main):
        text = CliRunner().invoke(main, [*path, "--help"]).output
        assert "..." not in text.partition("Commands:")[2], (path, text)  # no summary cut short
        undocumented = [p.opts for p in command.params if isinstance(p, click.Option) and not p.help]
        assert not undocumented, (path, undocumented)
    by = CliRunner().invoke(main, ["report", "rankings", "--help"]).output
    assert "user-country" in by and "user_country" not in by
