"""The CLI as a user runs it, and SIGTERM draining the ledger (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.servers import free_port

TOLLWAY = [sys.executable, "-m", "tollway"]


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TOLLWAY, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def _config(tmp_path: Path, upstream_url: str, database: str | None = None) -> Path:
    cfg = tmp_path / "tollway.yaml"
    cfg.write_text(f"""
database: {database or f"sqlite:///{tmp_path / 'ledger.db'}"}
catalog: false
providers:
  - name: bench
    kind: openai
    base_url: {upstream_url}/v1
    api_key: ${{BENCH_KEY}}
models:
  - id: bench/echo
    author: bench
    endpoints:
      - provider: bench
        model: echo
        pricing: {{prompt: 1.0, completion: 2.0}}
""")
    return cfg


def test_version_and_help(tmp_path: Path) -> None:
    out = _run("--version", cwd=tmp_path)
    assert out.returncode == 0 and "0.1.0" in out.stdout
    assert "serve" in _run("--help", cwd=tmp_path).stdout


def test_keys_create_list_revoke(tmp_path: Path, stub) -> None:  # type: ignore[no-untyped-def]
    cfg = _config(tmp_path, stub[1])
    env = {"BENCH_KEY": "sk-upstream-secret"}
    created = _run("keys", "create", "--config", str(cfg), "--name", "alice", "--country", "de", cwd=tmp_path,
                   env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("sk-tw-")
    listed = _run("keys", "list", "--config", str(cfg), "--json", cwd=tmp_path, env=env)
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["alice"] and rows[0]["country"] == "DE"
    assert key not in listed.stdout  # only a prefix is ever shown
    db_bytes = (tmp_path / "ledger.db").read_bytes()
    assert key.encode() not in db_bytes  # only the hash is stored
    assert _run("keys", "revoke", "--config", str(cfg), "alice", cwd=tmp_path, env=env).returncode == 0
    assert json.loads(_run("keys", "list", "--config", str(cfg), "--json", cwd=tmp_path, env=env).stdout) == []
    again = _run("keys", "revoke", "--config", str(cfg), "alice", cwd=tmp_path, env=env)
    assert again.returncode != 0 and "already revoked" in again.stderr


def test_config_error_is_reported_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("databse: sqlite:///x.db\n")
    out = _run("usage", "summary", "--config", str(cfg), cwd=tmp_path)
    assert out.returncode != 0
    assert "databse: unknown key" in out.stderr and "Traceback" not in out.stderr


def test_sigterm_drains_every_answered_generation(tmp_path: Path, stub) -> None:  # type: ignore[no-untyped-def]
    upstream, upstream_url = stub
    cfg = _config(tmp_path, upstream_url)
    env = {"BENCH_KEY": "sk-upstream-secret"}
    key = _run("keys", "create", "--config", str(cfg), "--name", "bench", cwd=tmp_path,
               env=env).stdout.strip().splitlines()[-1]
    # A long flush interval, so records are still queued when SIGTERM arrives.
    cfg.write_text(cfg.read_text() + "ledger: {flush_interval_ms: 60000, batch_size: 100000}\n")
    port = free_port()
    proc = subprocess.Popen([*TOLLWAY, "serve", "--config", str(cfg), "--port", str(port)], cwd=tmp_path,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, proc.stderr.read1().decode() if proc.stderr else ""
                time.sleep(0.05)
        n = 25
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as c:
            for i in range(n):
                resp = c.post("/v1/chat/completions", json={
                    "model": "bench/echo", "max_tokens": 3, "stream": i % 2 == 0,
                    "messages": [{"role": "user", "content": f"request {i}"}]})
                assert resp.status_code == 200
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises SIGTERM after its graceful shutdown, so -15 is a clean exit too.
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = _run("usage", "summary", "--config", str(cfg), "--json", cwd=tmp_path, env=env)
    totals = json.loads(summary.stdout.strip().splitlines()[-1])
    assert totals["requests"] == 25
    assert totals["completion_tokens"] == 25 * 3 == upstream.served_completion_tokens
    assert set(totals) >= {"requests", "prompt_tokens", "completion_tokens", "cost_usd"}


def test_two_workers_share_port_metrics_and_ledger(tmp_path: Path, stub) -> None:  # type: ignore[no-untyped-def]
    upstream, upstream_url = stub
    cfg = _config(tmp_path, upstream_url)
    env = {"BENCH_KEY": "sk-upstream-secret"}
    key = _run("keys", "create", "--config", str(cfg), "--name", "w", cwd=tmp_path,
               env=env).stdout.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([*TOLLWAY, "serve", "--config", str(cfg), "--port", str(port), "--workers", "2"],
                            cwd=tmp_path, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
            time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}) as c:
            for i in range(30):
                assert c.post("/v1/chat/completions", json={
                    "model": "bench/echo", "max_tokens": 2,
                    "messages": [{"role": "user", "content": f"r{i}"}]}).status_code == 200
            text = c.get("/metrics").text
        line = next(x for x in text.splitlines()
                    if x.startswith('tollway_requests_total{') and 'status="success"' in x)
        # Whichever worker answered /metrics, it reports the requests of both.
        assert float(line.rsplit(" ", 1)[1]) == 30.0
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    totals = json.loads(_run("usage", "summary", "--config", str(cfg), "--json", cwd=tmp_path,
                             env=env).stdout.strip().splitlines()[-1])
    assert totals["requests"] == 30 == len(upstream.requests)
