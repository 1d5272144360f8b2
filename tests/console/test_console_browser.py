"""The console in a real browser (Debian's chromium via Playwright) over SDK-made traffic."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.analytics.helpers import openrouter_weeks

from .conftest import ARTIFACTS, Stack, Visit, country_by_slug, crossover_week


def login(visit: Visit, stack: Stack, key: str) -> None:
    page = visit.page
    page.goto(stack.url + "/")
    page.goto(stack.url + "/console/login")
    page.fill('input[name="key"]', key)
    page.click('button[type="submit"]')
    page.wait_for_url("**/console/activity")


def charts_drawn(page: Any, *chart_ids: str) -> None:
    """Each chart was drawn by ECharts (a canvas of real size) from a non-empty series."""
    for chart_id in chart_ids:
        page.wait_for_selector(f"#{chart_id}[data-rendered='true']", timeout=15_000)
        points = int(page.get_attribute(f"#{chart_id}", "data-points") or "0")
        assert points > 0, f"{chart_id} has no data points"
        size = page.eval_on_selector(f"#{chart_id} canvas", "c => [c.width, c.height]")
        assert size[0] > 100 and size[1] > 100, (chart_id, size)
        series = page.evaluate(f"() => echarts.getInstanceByDom(document.getElementById('{chart_id}'))"
                               ".getOption().series.length")
        assert series >= 1


def table_rows(page: Any, table_id: str) -> list[list[str]]:
    page.wait_for_selector(f"#{table_id}[data-rows]", timeout=15_000)
    rows: list[list[str]] = page.eval_on_selector_all(
        f"#{table_id} tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")
    return rows


def shot(visit: Visit, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    visit.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def clean(visit: Visit) -> None:
    assert visit.errors == [], visit.errors
    assert visit.offsite == [], visit.offsite


def test_admin_sees_every_page_with_data(visit: Visit, stack: Stack) -> None:
    page = visit.page
    login(visit, stack, stack.admin_key)

    charts_drawn(page, "chart-activity", "chart-tasks")
    log = table_rows(page, "generations")
    every = set(stack.generations["alice"]) | set(stack.generations["bob"])
    shown = set(page.eval_on_selector_all("#generations tbody tr", "trs => trs.map(tr => tr.dataset.id)"))
    assert shown == every
    assert {row[1] for row in log} == {"test/echo", "open/moe"}
    tasks = table_rows(page, "tasks")
    assert {"task-alice-0", "task-alice-1", "task-bob"} <= {row[0] for row in tasks}
    # The fallback generation opens with both attempts: the failed cheap endpoint, then the good one.
    fallback_id = stack.generations["alice"][-1]
    page.click(f"#generations tr[data-id='{fallback_id}']")
    page.wait_for_selector(f"#generation-detail[data-generation='{fallback_id}']")
    attempts = table_rows(page, "attempts")
    assert [a[1] for a in attempts] == ["flaky", "stub"], attempts
    shot(visit, "activity-admin")

    page.goto(stack.url + "/console/rankings")
    charts_drawn(page, "chart-models", "chart-authors", "chart-origin", "chart-apps", "chart-weights",
                 "chart-categories")
    categories = page.evaluate("() => echarts.getInstanceByDom(document.getElementById('chart-categories'))"
                               ".getOption().yAxis[0].data")
    assert categories == ["programming-app"]
    expected = crossover_week(openrouter_weeks(), country_by_slug())
    assert page.get_attribute("#crossover-note", "data-period") == expected
    mark = page.evaluate("() => echarts.getInstanceByDom(document.getElementById('chart-origin'))"
                         ".getOption().series[0].markLine.data[0].xAxis")
    assert mark == expected
    assert table_rows(page, "leaderboard")
    shot(visit, "rankings-admin")

    page.goto(stack.url + "/console/models")
    models = table_rows(page, "models-table")
    assert {row[0] for row in models} == {"test/echo", "open/moe"}
    assert any("MoE 230" in row[4] for row in models)
    page.click("#models-table tr:has-text('test/echo')")
    page.wait_for_selector("#endpoints-model:has-text('test/echo')")
    charts_drawn(page, "chart-endpoints")
    endpoints = {row[0]: row for row in table_rows(page, "endpoints-table")}
    assert endpoints["stub"][4] == "100%" and endpoints["stub"][5] != "–"
    page.select_option("#whatif-from", "test/echo")
    page.select_option("#whatif-to", ["open/moe"])
    page.click("#whatif-form button[type='submit']")
    page.wait_for_selector("#whatif-table[data-rows]")
    whatif = {row[0]: row[1] for row in table_rows(page, "whatif-table")}
    cost = httpx.get(stack.url + "/api/v1/analytics/cost", params={"what_if": "open/moe", "model": "test/echo"},
                     headers={"Authorization": f"Bearer {stack.admin_key}"}).json()
    assert whatif["open/moe"] == f"${cost['scenarios'][0]['cost_usd']:.6f}"
    assert cost["scenarios"][0]["cost_nanousd"] < cost["actual_cost_nanousd"]  # MoE is the cheaper model
    charts_drawn(page, "chart-whatif")
    shot(visit, "models-admin")

    page.goto(stack.url + "/console/providers")
    providers = table_rows(page, "providers-table")
    breakers = {(row[0], row[1]): row[2] for row in providers}
    assert breakers[("stub", "test/echo")] == "closed"
    charts_drawn(page, "chart-latency", "chart-throughput")
    shot(visit, "providers-admin")

    page.goto(stack.url + "/console/keys")
    charts_drawn(page, "chart-spend")
    names = {row[0] for row in table_rows(page, "keys-table")}
    assert {"alice", "bob"} <= names
    shot(visit, "keys-admin")
    clean(visit)


def test_a_key_created_in_the_browser_works_and_revoking_it_stops_it(visit: Visit, stack: Stack) -> None:
    page = visit.page
    login(visit, stack, stack.admin_key)
    page.goto(stack.url + "/console/keys")
    table_rows(page, "keys-table")
    page.fill("#create-key input[name='name']", "made-in-browser")
    page.fill("#create-key input[name='limit']", "5")
    page.click("#create-key button[type='submit']")
    page.wait_for_selector("#new-key:not([hidden])")
    plain = page.text_content("#new-key-value") or ""
    assert plain.startswith("sk-")
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=plain, max_retries=0)
    hello = [{"role": "user", "content": "hi"}]
    reply = client.chat.completions.create(model="test/echo", max_tokens=3, messages=hello)  # type: ignore[arg-type]
    assert reply.choices[0].message.content

    row = page.locator("#keys-table tr[data-name='made-in-browser']")
    row.locator("input.amount").fill("2.5")
    row.locator("button.top-up").click()
    page.wait_for_selector("#keys-table tr[data-name='made-in-browser'] td:nth-child(4):has-text('$7.50')")
    row.locator("input.amount").fill("20")
    row.locator("select.reset").select_option("weekly")
    row.locator("button.set-limit").click()
    page.wait_for_selector("#keys-table tr[data-name='made-in-browser'] td:nth-child(6):has-text('weekly')")
    limited = httpx.get(stack.url + "/api/v1/key", headers={"Authorization": f"Bearer {plain}"}).json()["data"]
    assert limited["limit"] == 20 and limited["limit_reset"] == "weekly"
    row.locator("button.revoke").click()
    page.wait_for_selector("#keys-table tr[data-name='made-in-browser'] td:nth-child(7):has-text('revoked')")
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="test/echo", max_tokens=3, messages=hello)  # type: ignore[arg-type]
    clean(visit)


def test_a_plain_key_sees_only_its_own_traffic(visit: Visit, stack: Stack) -> None:
    page = visit.page
    login(visit, stack, stack.bob[1])
    table_rows(page, "generations")
    shown = set(page.eval_on_selector_all("#generations tbody tr", "trs => trs.map(tr => tr.dataset.id)"))
    assert shown == set(stack.generations["bob"])
    assert {row[0] for row in table_rows(page, "tasks")} == {"task-bob"}
    charts_drawn(page, "chart-activity", "chart-tasks")
    assert page.locator("nav a[href='/console/keys']").count() == 0
    shot(visit, "activity-plain-key")

    page.goto(stack.url + "/console/rankings")
    charts_drawn(page, "chart-models")
    assert {row[1] for row in table_rows(page, "leaderboard")} == {"open/moe"}
    shot(visit, "rankings-plain-key")

    clean(visit)
    keys_page = page.goto(stack.url + "/console/keys")
    assert keys_page is not None and keys_page.status == 403
    assert "needs an admin key" in (page.text_content("#page-error") or "")
    shot(visit, "keys-plain-key")
    assert visit.errors == ["Failed to load resource: the server responded with a status of 403 (Forbidden)"]
    visit.errors.clear()

    # The server refuses the calls themselves, made with this browser's session cookie.
    csrf = page.get_attribute('meta[name="csrf-token"]', "content")
    calls = {
        "keys": page.request.get(stack.url + "/api/v1/keys"),
        "other key's log": page.request.get(stack.url + f"/api/v1/console/generations?key={stack.alice[0]}"),
        "other key's generation": page.request.get(
            stack.url + f"/api/v1/generation?id={stack.generations['alice'][0]}"),
        "rankings by key": page.request.get(stack.url + "/api/v1/analytics/rankings?by=key"),
        "what-if": page.request.get(stack.url + "/api/v1/analytics/cost?what_if=open/moe"),
        "create key": page.request.post(stack.url + "/api/v1/keys", data={"name": "x"},
                                        headers={"x-csrf-token": csrf or ""}),
    }
    status = {name: response.status for name, response in calls.items()}
    assert status == {"keys": 403, "other key's log": 200, "other key's generation": 404, "rankings by key": 403,
                      "what-if": 403, "create key": 403}, status
    assert {g["id"] for g in calls["other key's log"].json()["data"]} == set(stack.generations["bob"])
    clean(visit)


def test_public_rankings_without_login(visit: Visit, stack: Stack) -> None:
    page = visit.page
    response = page.goto(stack.url + "/")
    assert response is not None and page.url.endswith("/console/rankings")
    charts_drawn(page, "chart-models", "chart-origin")
    assert page.get_attribute("#crossover-note", "data-period") == crossover_week(openrouter_weeks(),
                                                                                   country_by_slug())
    shot(visit, "rankings-public")
    page.goto(stack.url + "/console/activity")
    assert page.url.endswith("/console/login?next=/console/activity")
    shot(visit, "login")
    clean(visit)
    anonymous = httpx.get(stack.url + "/api/v1/analytics/rankings", params={"by": "key"})
    assert anonymous.status_code == 403 and "admin key" in anonymous.json()["error"]["message"]
    assert httpx.get(stack.url + "/api/v1/console/generations").status_code == 401
