"""A cut stream is billed by a local estimate (bytes / 4), which can exceed anything the
upstream could have produced under the cap it was sent; such an estimate is clamped to the
request's reservation, so it can never take a key past its limit (found by the soak:
a limited key ended 0.4% over)."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
from aiohttp import web

from tests.limits.support import gateway, ledger_totals, raw_config
from tests.support.servers import aiohttp_server, new_key

LIMIT_NANO = 500_000  # $0.0005: a few requests reserved at ~0.2 mUSD each


def _cutting_app(chars: int) -> web.Application:
    """Ignores ``max_tokens``, streams ``chars`` of text with no usage, then drops the connection."""

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"id": "chatcmpl-cut", "object": "chat.completion.chunk", "created": 1, "model": body["model"],
                 "choices": [{"index": 0, "delta": {"content": "y" * 1000}, "finish_reason": None}]}
        for _ in range(chars // 1000):
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        request.transport.close()  # type: ignore[union-attr]  # cut: no usage, no [DONE]
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


def test_an_overlong_estimate_is_clamped_to_the_reservation(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    with aiohttp_server(_cutting_app(40_000)) as upstream:  # ~10,000 tokens by the bytes/4 estimate
        key_id, key = new_key(db, limit_nanousd=LIMIT_NANO)
        statuses = []
        with gateway(raw_config(db, upstream, limits={"settlement_journal_dir": str(tmp_path / "j")})) as (url, _):
            for _ in range(30):
                resp = httpx.post(url + "/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                                  json={"model": "test/metered", "max_tokens": 50, "stream": True,
                                        "messages": [{"role": "user", "content": "talk"}]})
                statuses.append(resp.status_code)
                if resp.status_code == 402:
                    break
        spent, usage, _ = ledger_totals(db, key_id)
    assert statuses[0] == 200 and statuses[-1] == 402, statuses
    assert spent == usage, "the key's spend is the ledger's"
    assert 0 < spent <= LIMIT_NANO, f"spent {spent} nano-USD of a {LIMIT_NANO} limit"
