"""The demo's closing reports, read back from its ledger through tollway's analytics.

Rankings, what-if and task sizes are the analytics package's own functions over the
rollups (the same ones ``tollway report`` prints); provider health and fallbacks come from
the ``attempts`` the gateway records on each generation.  :func:`collect` returns plain
data (the tests compare it with the ledger); :func:`render` prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from sqlalchemy import Connection, select

WHAT_IF_TARGETS = ("anthropic/claude-opus-4.6", "minimax/minimax-m2.5")
SIM_LABEL = "simulated providers (sim-*): fake upstreams on loopback, real gateway, real ledger"


def provider_health(conn: Connection) -> dict[str, Any]:
    """Per provider: attempts, failed attempts, served generations; and how many fell back."""
    from tollway.ledger import schema

    g = schema.generations
    providers: dict[str, dict[str, int]] = {}
    fallbacks = 0
    failed_requests = 0
    for provider, status, attempts in conn.execute(select(g.c.provider, g.c.status, g.c.attempts)):
        tried = orjson.loads(attempts) if attempts else None
        if status == "error":
            failed_requests += 1
        if tried is None:  # one attempt, recorded only as the generation itself
            if provider is not None:
                cell = providers.setdefault(provider, {"attempts": 0, "failures": 0, "served": 0})
                cell["attempts"] += 1
                cell["failures"] += int(status == "error")
                cell["served"] += int(status != "error")
            continue
        if status != "error" and len(tried) > 1:
            fallbacks += 1
        for attempt in tried:
            cell = providers.setdefault(attempt["provider"], {"attempts": 0, "failures": 0, "served": 0})
            cell["attempts"] += 1
            ok = attempt.get("status") == 200
            cell["failures"] += int(not ok)
            cell["served"] += int(ok and status != "error")
    return {"providers": providers, "fallbacks": fallbacks, "failed_requests": failed_requests}


def collect(config_path: Path) -> dict[str, Any]:
    """Every report of the demo, as data."""
    from tollway.catalog import build_catalog
    from tollway.config import load_settings
    from tollway.ledger.db import create_db_engine
    from tollway.ledger.queries import usage_summary

    settings = load_settings(config_path)
    catalog = build_catalog(settings, env={})
    engine = create_db_engine(settings.database)
    out: dict[str, Any] = {}
    try:
        with engine.connect() as conn:
            out["summary"] = usage_summary(conn)
            out["health"] = provider_health(conn)
            try:
                out.update(_analytics(conn, catalog))
            except ImportError as exc:  # analytics not installed in this build
                out["analytics_missing"] = str(exc)
    finally:
        engine.dispose()
    return out


def _analytics(conn: Connection, catalog: Any) -> dict[str, Any]:
    from tollway.analytics.attribution import Attribution
    from tollway.analytics.distributions import task_distribution
    from tollway.analytics.rankings import RankingQuery, rankings
    from tollway.analytics.whatif import what_if

    attribution = Attribution.load(conn, catalog, with_keys=False)
    return {
        "origin_weekly": rankings(conn, RankingQuery(by="origin", period="week"), attribution),
        "models_weekly": rankings(conn, RankingQuery(by="model", period="week"), attribution),
        "models_total": rankings(conn, RankingQuery(by="model", period="total"), attribution),
        "what_if": what_if(conn, catalog, [t for t in WHAT_IF_TARGETS if t in catalog.models]),
        "tasks": task_distribution(conn),
    }


def write_charts(reports: dict[str, Any], out_dir: Path, config_path: Path | None = None) -> list[Path]:
    """PNG charts of the reports; none when matplotlib or the reports are missing."""
    try:
        from tollway.analytics.charts import origins_from_catalog, render_png
    except ImportError:
        return []
    origins = None
    if config_path is not None:
        from tollway.catalog import build_catalog
        from tollway.config import load_settings

        origins = origins_from_catalog("model", build_catalog(load_settings(config_path), env={}))
    written = []
    for name, title in (("origin_weekly", "Share of tokens by model origin, per week (simulated providers)"),
                        ("models_weekly", "Tokens by model, per week, coloured by origin (simulated providers)"),
                        ("models_total", "Top models over the whole run (simulated providers)")):
        report = reports.get(name)
        if report and report["rows"]:
            path = out_dir / f"{name}.png"
            render_png(report, path, title=title, origins=origins if report["by"] == "model" else None)
            written.append(path)
    return written


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def render(reports: dict[str, Any], console: Console) -> None:
    """Print the reports as tables."""
    console.rule("[bold]tollway demo: reports from the ledger")
    console.print(f"[yellow]{SIM_LABEL}")
    s = reports["summary"]
    failed = reports["health"]["failed_requests"]
    console.print(f"requests {s['requests'] + failed:,} = {s['requests']:,} answered + {failed:,} failed at every "
                  f"provider;   tokens {s['prompt_tokens'] + s['completion_tokens']:,} = prompt "
                  f"{s['prompt_tokens']:,} (cached {s['cached_tokens']:,}) + completion {s['completion_tokens']:,}"
                  f" (answered requests);   cost ${s['cost_nanousd'] / 1e9:,.2f}")
    if "analytics_missing" in reports:
        console.print(f"(rankings unavailable: {reports['analytics_missing']})")
    else:
        _render_origin(reports["origin_weekly"], console)
        _render_models(reports["models_total"], reports["models_weekly"], console)
        _render_what_if(reports["what_if"], console)
        _render_tasks(reports["tasks"], console)
    _render_health(reports["health"], console)


def _render_origin(report: dict[str, Any], console: Console) -> None:
    from tollway.cli.report_tables import pivot_table

    console.print(pivot_table(report, title="Weekly share of tokens by model origin (the crossover)"))


def _render_models(total: dict[str, Any], weekly: dict[str, Any], console: Console) -> None:
    table = Table(title="Top models (whole period)")
    for name, justify in (("#", "right"), ("model", "left"), ("tokens", "right"), ("share", "right"),
                          ("requests", "right"), ("cost", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in total["rows"][:10]:
        table.add_row(str(row["rank"]), row["key"], f"{row['total_tokens']:,}", _pct(row["share"]),
                      f"{row['requests']:,}", f"${row['cost_usd']:,.2f}")
    console.print(table)
    periods = weekly["periods"]
    if periods:
        first, last = periods[0], periods[-1]
        console.print(f"top-5 concentration: {_pct(first['top_n_share'])} in week of {first['period_start']}"
                      f" -> {_pct(last['top_n_share'])} in week of {last['period_start']}")
    growth = sorted((g for g in weekly["growth"] if g["growth"] is not None and g["first_tokens"]),
                    key=lambda g: -g["growth"])[:5]
    if growth:
        console.print("fastest growing: " + ", ".join(
            f"{g['key']} {g['growth'] * 100:+.0f}% ({g['first_period']}..{g['last_period']})" for g in growth))


def _render_what_if(report: dict[str, Any], console: Console) -> None:
    console.print(f"what-if: this traffic ({report['requests']:,} requests) cost "
                  f"${report['actual_cost_usd']:,.2f}; on one model instead:")
    for scenario in report["scenarios"]:
        console.print(f"  {scenario['model']:<32} ${scenario['cost_usd']:,.2f}")
    costs = [s["cost_nanousd"] for s in report["scenarios"]]
    if len(costs) == 2 and costs[1]:
        console.print(f"  -> {report['scenarios'][0]['model']} costs {costs[0] / costs[1]:.1f}x "
                      f"{report['scenarios'][1]['model']} for the same tokens")


def _render_tasks(report: dict[str, Any], console: Console) -> None:
    if not report["tasks"]:
        return
    p = report["percentiles"]
    console.print(f"agent tasks (sessions): {report['tasks']:,}, tokens per task "
                  + ", ".join(f"{k} {v:,}" for k, v in p.items())
                  + f", largest {report['max_tokens']:,}")


def _render_health(health: dict[str, Any], console: Console) -> None:
    table = Table(title="Provider health (simulated providers; error rates are injected)")
    for name in ("provider", "attempts", "failed", "error rate", "served"):
        table.add_column(name, justify="left" if name == "provider" else "right")
    for name, cell in sorted(health["providers"].items()):
        table.add_row(name, f"{cell['attempts']:,}", f"{cell['failures']:,}",
                      _pct(cell["failures"] / cell["attempts"] if cell["attempts"] else None),
                      f"{cell['served']:,}")
    console.print(table)
    console.print(f"fallbacks: {health['fallbacks']:,} requests were answered by a later provider after "
                  f"an earlier one failed; {health['failed_requests']:,} requests failed everywhere")
