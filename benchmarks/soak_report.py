"""The soak's books: what clients were answered, what the upstreams served, what the ledger,
the key rows and Redis say; and a verdict that names every mismatch (see soak.py)."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import psycopg
import redis


def _ledger(database: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT id, key_id, status, prompt_tokens, completion_tokens, cost_nanousd, estimated, "
                            "cancelled, streamed, http_status, provider FROM generations").fetchall()
        cols = ("id", "key_id", "status", "prompt_tokens", "completion_tokens", "cost_nanousd", "estimated",
                "cancelled", "streamed", "http_status", "provider")
        generations = {r[0]: dict(zip(cols, r, strict=True)) for r in rows}
        keys = {r[0]: {"usage_nanousd": int(r[1]), "limit_nanousd": r[2]}
                for r in conn.execute("SELECT id, usage_nanousd, limit_nanousd FROM keys").fetchall()}
    return generations, keys


def _redis_view(url: str, key_id: str) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    try:
        base = "tw:{" + key_id + "}"
        spend = {k.decode().rsplit(":", 1)[1]: int(client.get(k) or 0) for k in client.scan_iter(f"{base}:spend:*")}
        held = int(client.get(f"{base}:resv:total") or 0)
    finally:
        client.close()
    return {"spend": spend, "reserved": held}


def reconcile(database: str, redis_url: str, keys: Any, outcomes: list[Any], served: list[dict[str, Any]],
              events: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    generations, key_rows = _ledger(database)
    problems: list[str] = []

    # -- requests as the clients saw them
    statuses = Counter(str(o.status) if o.status is not None else f"no response ({o.error})" for o in outcomes)
    kill_at = next((e["at"] for e in events if e["event"].startswith("SIGKILL")), None)
    restarted_at = next((e["at"] for e in events if e["event"] == "replica 1 restarted"), None)
    # Answered: the whole response arrived (a stream cut by the SIGKILL got its 200 but not its end).
    answered = [o for o in outcomes if o.status == 200 and o.generation_id and o.error is None]
    missing = [o for o in answered if o.generation_id not in generations]
    in_kill_window = [o for o in missing if kill_at is not None and o.replica == 1 and o.ended <= kill_at + 0.5
                      and kill_at - o.ended <= args.sigkill_window_s]
    if len(missing) != len(in_kill_window):
        problems.append(f"{len(missing) - len(in_kill_window)} answered generations missing from the ledger "
                        "outside the SIGKILL window")
    if statuses.get("500"):
        problems.append(f"{statuses['500']} responses were 500 (internal error)")
    by_kind = Counter(o.kind for o in outcomes)
    hostile = [o for o in outcomes if o.hostile]

    # -- the upstreams' counters against the ledger
    served_total = {f: sum(int(s.get(f, 0)) for s in served) for f in
                    ("requests", "ok", "prompt_tokens", "completion_tokens", "partial", "partial_completion_tokens")}
    rows = list(generations.values())
    exact = [g for g in rows if g["status"] == "success" and not g["estimated"]]
    ledger_completion = sum(int(g["completion_tokens"]) for g in rows)
    by_status = Counter((g["status"], bool(g["estimated"])) for g in rows)
    tokens_by_status = Counter()
    for g in rows:
        tokens_by_status[f"{g['status']}{' (estimated)' if g['estimated'] else ''}"] += int(g["completion_tokens"])
    served_completion = served_total["completion_tokens"] + served_total["partial_completion_tokens"]
    lost_tokens = sum(o.max_tokens for o in in_kill_window)
    cut_by_kill = [o for o in outcomes if kill_at is not None and o.replica == 1 and o.error is not None
                   and (o.status is None or o.status == 200) and abs(o.ended - kill_at) < 2.0]
    in_flight_tokens = sum(o.max_tokens for o in cut_by_kill)
    token_gap = served_completion - ledger_completion
    # Exact rows (the upstream's own usage) can never exceed what it served; what they fall
    # short by is upstream-complete responses the ledger holds as cut rows (client cancels,
    # timeouts: billed by estimate) or lost at the SIGKILL.
    exact_tokens = sum(int(g["completion_tokens"]) for g in exact)
    cut_tokens = ledger_completion - exact_tokens
    exact_gap = served_total["completion_tokens"] - exact_tokens
    if exact_gap < 0:
        problems.append(f"ledger bills {-exact_gap} exact completion tokens more than the upstreams served")
    if exact_gap > lost_tokens + in_flight_tokens + cut_tokens:
        problems.append(f"{exact_gap} served completion tokens are in no ledger row (SIGKILL bound "
                        f"{lost_tokens + in_flight_tokens}, cut rows {cut_tokens})")

    # -- money: key rows, ledger sums, Redis counters, limits
    per_key: dict[str, Any] = {}
    for kind, pairs in (("unlimited", keys.unlimited), ("limited", keys.limited)):
        for key_id, _plain in pairs:
            ledger_spend = sum(int(g["cost_nanousd"]) for g in rows if g["key_id"] == key_id)
            row = key_rows.get(key_id, {})
            view = _redis_view(redis_url, key_id)
            redis_spend = sum(view["spend"].values()) if view["spend"] else None
            limit = row.get("limit_nanousd")
            entry = {"kind": kind, "ledger_nanousd": ledger_spend, "key_row_nanousd": row.get("usage_nanousd"),
                     "redis_nanousd": redis_spend, "redis_reserved_nanousd": view["reserved"],
                     "limit_nanousd": limit, "requests": sum(1 for o in outcomes if o.key == key_id),
                     "answered_402": sum(1 for o in outcomes if o.key == key_id and o.status == 402)}
            per_key[key_id] = entry
            if row.get("usage_nanousd") != ledger_spend:
                problems.append(f"{key_id}: keys.usage_nanousd {row.get('usage_nanousd')} != ledger {ledger_spend}")
            if kind == "limited" and redis_spend != ledger_spend:
                problems.append(f"{key_id}: Redis spend {redis_spend} != ledger {ledger_spend}")
            if limit is not None and ledger_spend > int(limit):
                problems.append(f"{key_id}: spent {ledger_spend} nano-USD over its limit {limit}")

    started = next((e["at"] for e in events if e["event"] == "load start"), None)
    return {
        "config": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "events": [{"event": e["event"], "t_s": round(e["at"] - started, 2) if started else None} for e in events],
        "requests": {"total": len(outcomes), "by_kind": dict(by_kind), "by_status": dict(statuses),
                     "hostile": len(hostile), "hostile_5xx": sum(1 for o in hostile if (o.status or 0) >= 500),
                     "5xx": {k: v for k, v in statuses.items() if k.startswith("5")},
                     "5xx_causes": dict(Counter(f"{o.status} {o.error}" for o in outcomes
                                                if (o.status or 0) >= 500).most_common(12))},
        "ledger_vs_answers": {"answered_with_id": len(answered), "missing_from_ledger": len(missing),
                              "missing_in_sigkill_window": len(in_kill_window),
                              "missing_answered_s_before_kill": sorted(round(kill_at - o.ended, 3)
                                                                       for o in in_kill_window) if kill_at else [],
                              "sigkill_window_s": args.sigkill_window_s,
                              "cut_by_sigkill_no_response": len(cut_by_kill),
                              "replica_1_down_s": round(restarted_at - kill_at, 2) if kill_at and restarted_at
                              else None},
        "ledger_vs_upstreams": {"served": served_total, "ledger_rows": len(rows),
                                "ledger_rows_by_status": {f"{s}{' (estimated)' if e else ''}": n
                                                          for (s, e), n in by_status.items()},
                                "ledger_exact_success_completion_tokens": exact_tokens,
                                "upstream_complete_minus_ledger_exact": exact_gap,
                                "cut_rows_estimated_tokens_vs_upstream_partial": [cut_tokens,
                                                                                  served_total[
                                                                                      "partial_completion_tokens"]],
                                "ledger_completion_tokens": ledger_completion,
                                "ledger_completion_tokens_by_status": dict(tokens_by_status),
                                "upstream_served_completion_tokens": served_completion,
                                "gap_tokens": token_gap, "sigkill_bound_tokens": lost_tokens + in_flight_tokens},
        "keys": per_key,
        "verdict": {"ok": not problems, "problems": problems},
    }


def summary(report: dict[str, Any]) -> str:
    req, lva, lvu = report["requests"], report["ledger_vs_answers"], report["ledger_vs_upstreams"]
    lines = [
        f"requests {req['total']} by status {req['by_status']} (hostile {req['hostile']}, "
        f"hostile 5xx {req['hostile_5xx']})",
        f"events {[(e['event'], e['t_s']) for e in report['events']]}",
        f"answered with id {lva['answered_with_id']}, missing from ledger {lva['missing_from_ledger']} "
        f"(in SIGKILL window {lva['missing_in_sigkill_window']}), cut by SIGKILL {lva['cut_by_sigkill_no_response']}",
        f"completion tokens: upstreams served {lvu['upstream_served_completion_tokens']}, ledger "
        f"{lvu['ledger_completion_tokens']} (gap {lvu['gap_tokens']}, SIGKILL bound {lvu['sigkill_bound_tokens']}); "
        f"ledger rows {lvu['ledger_rows_by_status']}, their completion tokens "
        f"{lvu['ledger_completion_tokens_by_status']}; upstream counters {lvu['served']}",
        f"exact: upstreams' complete responses {lvu['served']['completion_tokens']} tokens, ledger exact rows "
        f"{lvu['ledger_exact_success_completion_tokens']} (short by {lvu['upstream_complete_minus_ledger_exact']}); "
        f"cut rows billed {lvu['cut_rows_estimated_tokens_vs_upstream_partial'][0]} vs upstream partial "
        f"{lvu['cut_rows_estimated_tokens_vs_upstream_partial'][1]}",
        f"5xx causes {req['5xx_causes']}",
    ]
    for key_id, k in report["keys"].items():
        lines.append(f"  {key_id} {k['kind']:9} ledger {k['ledger_nanousd']} row {k['key_row_nanousd']} "
                     f"redis {k['redis_nanousd']} limit {k['limit_nanousd']} 402s {k['answered_402']}")
    verdict = report["verdict"]
    lines.append("VERDICT: " + ("ok" if verdict["ok"] else "PROBLEMS:\n  " + "\n  ".join(verdict["problems"])))
    return "\n".join(lines)
