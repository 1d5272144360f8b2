"""The demo's workload: weeks of requests whose model mix and sizes follow public data.

``data/workload.json`` (made by ``scripts/build_demo_data.py``) holds, per week, each
top model's real OpenRouter request count, average prompt/completion size and cache-hit
share, and the size *shapes* of three public traces.  :func:`plan_weeks` turns that into
concrete requests: a week gets requests in proportion to its real token volume, each model
its share of the week's real requests (largest remainders, so the mix is exact, not
sampled), and each request a size drawn by stratified quantiles of its trace shape times
the model's real average - so a few hundred requests reproduce each week's token shares.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

BASE_REQUESTS_PER_WEEK = 160  # at --scale 1: ~2,400 requests over the 15 weeks
AGENT_TURNS_MEAN = 6  # turns per agent task (session)
STREAM_SHARE = 0.7
DEFAULT_AVG_PROMPT = 8000.0  # for the rare model-week without request counts
DEFAULT_AVG_COMPLETION = 400.0

# Apps attribute traffic (HTTP-Referer / X-Title).  Illustrative names of the kinds of apps
# on OpenRouter's public app rankings; the workload is attributed by task kind.
APPS: dict[str, tuple[tuple[str, str], ...]] = {
    "agentic": (("https://kilocode.ai", "Kilo Code"), ("https://cline.bot", "Cline"),
                ("https://roocode.com", "Roo Code")),
    "coding": (("https://kilocode.ai", "Kilo Code"), ("https://github.com/features/copilot", "Editor plugin")),
    "conversation": (("https://sillytavern.app", "SillyTavern"), ("https://openrouter.ai", "Chatroom"),
                     ("https://janitorai.com", "Janitor AI")),
}


@cache
def load_data() -> dict[str, Any]:
    """The shipped distilled parameters (read once per process)."""
    raw = resources.files("tollway.demo").joinpath("data", "workload.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(raw)
    return data


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One request the workload will send."""

    week: int
    at: datetime  # simulated time
    model: str
    kind: str  # conversation | coding | agentic
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    stream: bool
    app: str
    app_title: str
    session_id: str | None


@dataclass(frozen=True, slots=True)
class Week:
    index: int
    start: date
    requests: list[PlannedRequest]


def task_kind(avg_prompt: float) -> str:
    """Which trace shape a model's traffic follows, by its real average prompt size."""
    if avg_prompt >= 20_000:
        return "agentic"
    if avg_prompt >= 5_000:
        return "coding"
    return "conversation"


def allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    """``total`` split by ``weights`` with largest remainders (sums exactly to ``total``)."""
    mass = sum(weights.values())
    if total <= 0 or mass <= 0:
        return dict.fromkeys(weights, 0)
    exact = {k: total * w / mass for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    left = total - sum(out.values())
    for k in sorted(exact, key=lambda k: (out[k] - exact[k], k))[:left]:
        out[k] += 1
    return out


def _shape_value(shape: list[float], q: float) -> float:
    pos = q * (len(shape) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(shape) - 1)
    return shape[lo] + (shape[hi] - shape[lo]) * (pos - lo)


def _stratified(n: int, rng: random.Random) -> list[float]:
    qs = [(i + rng.random()) / n for i in range(n)]
    rng.shuffle(qs)
    return qs


def plan_weeks(scale: float = 1.0, seed: int = 7, weeks: int | None = None) -> list[Week]:
    """Every request of the demo, week by week, deterministic for a seed."""
    data = load_data()
    rng = random.Random(seed)
    all_weeks = data["weeks"][-weeks:] if weeks else data["weeks"]
    volumes = [sum(c["tokens"] for c in w["models"].values()) for w in all_weeks]
    mean_volume = sum(volumes) / len(volumes)
    out: list[Week] = []
    for index, (week, volume) in enumerate(zip(all_weeks, volumes, strict=True)):
        start = date.fromisoformat(week["start"])
        total = max(len(week["models"]), round(BASE_REQUESTS_PER_WEEK * scale * volume / mean_volume))
        weights = {}
        for model, cell in week["models"].items():
            requests = cell["requests"] or cell["tokens"] / (DEFAULT_AVG_PROMPT + DEFAULT_AVG_COMPLETION)
            weights[model] = float(requests)
        counts = allocate(total, weights)
        requests_out: list[PlannedRequest] = []
        for model, n in counts.items():
            requests_out.extend(_model_requests(index, start, model, week["models"][model], n, rng, data))
        requests_out.sort(key=lambda r: r.at)
        out.append(Week(index=index, start=start, requests=requests_out))
    return out


def _model_requests(index: int, start: date, model: str, cell: dict[str, Any], n: int,
                    rng: random.Random, data: dict[str, Any]) -> list[PlannedRequest]:
    avg_prompt = cell["avg_prompt"] or DEFAULT_AVG_PROMPT
    avg_completion = cell["avg_completion"] or DEFAULT_AVG_COMPLETION
    kind = task_kind(avg_prompt)
    shape = data["shapes"][kind]
    week_start = datetime(start.year, start.month, start.day)
    out = []
    session: str | None = None
    turns_left = 0
    app, title = rng.choice(APPS[kind])
    for qp, qc in zip(_stratified(n, rng), _stratified(n, rng), strict=True):
        prompt = max(16, round(avg_prompt * _shape_value(shape["prompt"], qp)))
        completion = max(1, round(avg_completion * _shape_value(shape["completion"], qc)))
        if kind == "agentic":
            if turns_left <= 0:  # a new agent task: a session of several turns
                session = f"task-{rng.getrandbits(48):012x}"
                turns_left = max(1, round(rng.expovariate(1 / AGENT_TURNS_MEAN)))
                app, title = rng.choice(APPS[kind])
            turns_left -= 1
        else:
            app, title = rng.choice(APPS[kind])
        at = week_start + timedelta(seconds=rng.uniform(0, 7 * 86400 - 1))
        out.append(PlannedRequest(
            week=index, at=at.replace(microsecond=0), model=model, kind=kind, prompt_tokens=prompt,
            cached_tokens=round(prompt * cell["cache_share"]), completion_tokens=completion,
            stream=rng.random() < STREAM_SHARE, app=app, app_title=title,
            session_id=session if kind == "agentic" else None))
    return out


def marker(request: PlannedRequest) -> str:
    """The size marker the simulated providers read (see :mod:`tollway.demo.fleet`)."""
    return (f"[sim prompt={request.prompt_tokens} cached={request.cached_tokens} "
            f"completion={request.completion_tokens}]")
