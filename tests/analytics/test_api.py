"""GET /api/v1/analytics/...: the same documents as the CLI, over HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tollway.analytics.attribution import Attribution
from tollway.analytics.rankings import RankingQuery, rankings
from tollway.api.analytics import routes
from tollway.catalog.index import build_catalog
from tollway.errors import TollwayError

from .helpers import MINIMAX, OPUS, db_url, ledger, record, settings_for, write

__all__ = ["db_url"]


def test_rankings_cost_and_tasks_over_http(db_url: str) -> None:
    catalog = build_catalog(settings_for(db_url))
    start = datetime(2026, 2, 9, 12)
    records = [record(i, start + timedelta(hours=5 * i), [OPUS["id"], MINIMAX["id"]][i % 2],
                      prompt_tokens=20_000 + i, completion_tokens=500, session_id=f"s{i % 7}",
                      cost_nanousd=1_000 + i) for i in range(80)]
    with ledger(db_url) as engine:
        write(engine, records)
        app = Starlette(routes=routes)
        app.state.gateway = SimpleNamespace(engine=engine, catalog=catalog)

        async def bad_request(_request, exc):  # type: ignore[no-untyped-def]
            from starlette.responses import JSONResponse

            return JSONResponse({"error": {"message": exc.message}}, status_code=exc.status)

        app.add_exception_handler(TollwayError, bad_request)
        client = TestClient(app)
        got = client.get("/api/v1/analytics/rankings", params={"by": "origin", "period": "week",
                                                               "from": "2026-02-09", "to": "2026-02-22"})
        assert got.status_code == 200 and got.headers["content-type"] == "application/json"
        with engine.connect() as conn:
            expected = rankings(conn, RankingQuery(by="origin", period="week", start=start.date(),
                                                   end=start.date() + timedelta(days=13)),
                                Attribution.load(conn, catalog, with_keys=False))
        assert got.json() == expected
        assert {r["key"] for r in got.json()["rows"]} == {"US", "CN"}

        cost = client.get("/api/v1/analytics/cost", params=[("what_if", MINIMAX["id"]), ("model", OPUS["id"])])
        assert cost.status_code == 200
        assert cost.json()["actual_cost_nanousd"] == sum(r.cost_nanousd for r in records if r.model == OPUS["id"])
        tasks = client.get("/api/v1/analytics/tasks").json()
        assert tasks["tasks"] == 7 and tasks["total_tokens"] == sum(r.prompt_tokens + r.completion_tokens
                                                                     for r in records)
        assert client.get("/api/v1/analytics/requests").json()["requests"] == 80

        bad = client.get("/api/v1/analytics/rankings", params={"by": "planet"})
        assert bad.status_code == 400 and "unknown dimension" in bad.json()["error"]["message"]
        assert client.get("/api/v1/analytics/rankings", params={"from": "last week"}).status_code == 400
        assert client.get("/api/v1/analytics/cost").status_code == 400
