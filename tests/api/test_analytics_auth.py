"""Analytics over HTTP in the real app: the admin reads everything, another key its own traffic."""

from __future__ import annotations

import httpx
import openai

from tests.conftest import Running
from tests.support.servers import new_key


def test_analytics_need_admin_and_read_the_rollups(running: Running) -> None:
    client = openai.OpenAI(base_url=running.url + "/v1", api_key=running.key, max_retries=0)
    for _ in range(3):
        client.chat.completions.create(model="test/echo", max_tokens=4,
                                       messages=[{"role": "user", "content": "hello"}])
    running.flush()
    url = running.url + "/api/v1/analytics/rankings"
    params = {"by": "model", "period": "day"}
    assert httpx.get(url, params=params).status_code == 401
    _, other = new_key(running.database, name="other")
    other_client = openai.OpenAI(base_url=running.url + "/v1", api_key=other, max_retries=0)
    other_client.chat.completions.create(model="test/echo", max_tokens=7,
                                         messages=[{"role": "user", "content": "hello"}])
    running.flush()
    # A plain key ranks its own traffic only, whatever key it names, and no per-key dimension.
    own = httpx.get(url, params={**params, "key": "someone-else"},
                    headers={"Authorization": f"Bearer {running.key}"}).json()
    assert [r["completion_tokens"] for r in own["rows"]] == [12]
    by_key = httpx.get(url, params={"by": "key"}, headers={"Authorization": f"Bearer {running.key}"})
    assert by_key.status_code == 403 and "admin key" in by_key.json()["error"]["message"]
    cost = httpx.get(running.url + "/api/v1/analytics/cost", params={"what_if": "test/echo"},
                     headers={"Authorization": f"Bearer {running.key}"})
    assert cost.status_code == 403 and "admin key" in cost.json()["error"]["message"]
    _, admin = new_key(running.database, name="ops", is_admin=True)
    doc = httpx.get(url, params=params, headers={"Authorization": f"Bearer {admin}"}).json()
    rows = [r for r in doc["rows"] if r["key"] == "test/echo"]
    assert len(rows) == 1
    assert rows[0]["completion_tokens"] == 12 + 7  # 3 requests x 4 tokens + 7, from the rollups
