"""Analytics over HTTP are mounted in the real app behind the admin key."""

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
    denied = httpx.get(url, params=params, headers={"Authorization": f"Bearer {running.key}"})
    assert denied.status_code == 403 and "admin key" in denied.json()["error"]["message"]
    _, admin = new_key(running.database, name="ops", is_admin=True)
    doc = httpx.get(url, params=params, headers={"Authorization": f"Bearer {admin}"}).json()
    rows = [r for r in doc["rows"] if r["key"] == "test/echo"]
    assert len(rows) == 1
    assert rows[0]["completion_tokens"] == 12  # 3 requests x 4 tokens, from the rollups
