"""``/api/v1/console/rankings``: the Rankings page's reports in one answer, each what the
page draws of the document the rankings API gives for that query, scoped as the rankings
API scopes it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from tollway.console.rankings import DAY_RANGE_DAYS, slim

from .conftest import Stack

# The page's reports and the rankings API query each one stands for.
REPORTS = {"model": ("model", None), "author": ("author", "total"), "origin": ("origin", None),
           "weights": ("weights", None), "app": ("app", "total")}
TOPS = {"author": "10", "app": "10"}


def _separately(stack: Stack, headers: dict[str, str], form: dict[str, str]) -> dict[str, Any]:
    out = {}
    for name, (by, period) in REPORTS.items():
        params = {**form, "by": by, "period": period or form.get("period", "week")}
        params["top"] = TOPS.get(name, form.get("top", "8"))
        if name in ("origin", "weights"):
            del params["top"]
        response = httpx.get(stack.url + "/api/v1/analytics/rankings", params=params, headers=headers)
        assert response.status_code == 200, response.text
        out[name] = response.json()
    return out


@pytest.mark.parametrize("form", [
    {},
    {"period": "week", "from": "2026-01-14", "to": "2026-02-25", "top": "3"},  # starts mid-week
    {"period": "month", "from": "2025-11-01"},
    {"period": "day", "top": "2"},
])
@pytest.mark.parametrize("who", ["admin", "bob", "public"])
def test_each_report_is_the_rankings_api_answer(stack: Stack, form: dict[str, str], who: str) -> None:
    headers = {"admin": {"Authorization": f"Bearer {stack.admin_key}"},
               "bob": {"Authorization": f"Bearer {stack.bob[1]}"}, "public": {}}[who]
    got = httpx.get(stack.url + "/api/v1/console/rankings", params=form, headers=headers)
    assert got.status_code == 200, got.text
    doc = got.json()
    asked = dict(form)
    if form.get("period") == "day" and "from" not in form:
        # Days default to the last DAY_RANGE_DAYS up to the latest traffic (today's, here).
        start = date.fromisoformat(doc["model"]["from"])
        assert doc["model"]["periods"] and start == date.fromisoformat(
            doc["model"]["periods"][-1]["period_start"]) - timedelta(days=DAY_RANGE_DAYS - 1)
        asked["from"] = start.isoformat()
    expected = _separately(stack, headers, asked)
    for name in REPORTS:
        assert doc[name] == slim(expected[name]), name
    # The imported weeks (2025-2026) lie in every range; the live traffic (bob's) is today's.
    assert bool(doc["model"]["rows"]) == (who != "bob" or "to" not in form), doc["model"]["rows"]
    if who == "bob" and doc["model"]["rows"]:
        assert {r["key"] for r in doc["model"]["rows"]} == {"open/moe"}  # bob's own traffic only
    if who == "public":
        assert doc["categories"] is None
    elif "to" not in form and form.get("period", "week") == "week":
        categories = {r["category"]: r["tokens_total"] for r in doc["categories"]["data"]["data"]}
        # alice's traffic declared its category; bob's has none.
        assert (categories.get("programming-app", 0) > 0) == (who == "admin"), categories


def test_scope_cannot_be_widened(stack: Stack) -> None:
    alice_key = stack.alice[0]
    bob = {"Authorization": f"Bearer {stack.bob[1]}"}
    own = httpx.get(stack.url + "/api/v1/console/rankings", headers=bob).json()
    asked = httpx.get(stack.url + "/api/v1/console/rankings", params={"key": alice_key}, headers=bob).json()
    for doc in (own, asked):
        doc["categories"]["data"].pop("metadata")  # holds the query's time
    assert asked == own
    assert {r["key"] for r in own["model"]["rows"]} == {"open/moe"}
    anonymous = httpx.get(stack.url + "/api/v1/console/rankings", params={"key": alice_key})
    assert anonymous.status_code == 403 and "filtered by key" in anonymous.json()["error"]["message"]
    bad = httpx.get(stack.url + "/api/v1/console/rankings", params={"period": "total"}, headers=bob)
    assert bad.status_code == 400 and "period" in bad.json()["error"]["message"]
