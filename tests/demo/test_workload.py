"""The workload reproduces the public weekly model mix it was distilled from."""

from __future__ import annotations

from tollway.demo.workload import allocate, load_data, plan_weeks


def test_allocate_sums_exactly_and_follows_weights() -> None:
    out = allocate(10, {"a": 0.5, "b": 0.3, "c": 0.2})
    assert out == {"a": 5, "b": 3, "c": 2}
    odd = allocate(7, {"a": 1.0, "b": 1.0, "c": 1.0})
    assert sum(odd.values()) == 7 and max(odd.values()) - min(odd.values()) == 1


def test_plan_is_deterministic_per_seed() -> None:
    assert plan_weeks(scale=0.2, seed=3) == plan_weeks(scale=0.2, seed=3)
    assert plan_weeks(scale=0.2, seed=3) != plan_weeks(scale=0.2, seed=4)


def test_last_week_token_shares_follow_the_rankings() -> None:
    data = load_data()
    week = data["weeks"][-1]
    models = data["models"]
    real_total = sum(c["tokens"] for c in week["models"].values())
    real_cn = sum(c["tokens"] for m, c in week["models"].items() if models[m]["author_country"] == "CN")
    planned = plan_weeks(scale=1.0, seed=7)[-1]
    assert planned.start.isoformat() == week["start"]
    tokens = sum(r.prompt_tokens + r.completion_tokens for r in planned.requests)
    cn = sum(r.prompt_tokens + r.completion_tokens for r in planned.requests
             if models[r.model]["author_country"] == "CN")
    # Chinese-authored models lead in the last week, in the data and in the plan.
    assert real_cn / real_total > 0.5
    assert abs(cn / tokens - real_cn / real_total) < 0.08
    # Each planned request's simulated time lies inside its week.
    days = {(r.at.date() - planned.start).days for r in planned.requests}
    assert min(days) >= 0 and max(days) <= 6


def test_agentic_requests_come_in_sessions_and_mostly_cached() -> None:
    planned = [r for w in plan_weeks(scale=0.5) for r in w.requests if r.kind == "agentic"]
    assert planned and all(r.session_id for r in planned)
    assert len({r.session_id for r in planned}) < len(planned)  # several turns per task
    assert sum(r.cached_tokens for r in planned) > 0.5 * sum(r.prompt_tokens for r in planned)
