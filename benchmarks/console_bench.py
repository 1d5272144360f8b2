"""How long each console page waits for its data, and how much each page weighs.

    .venv/bin/python benchmarks/console_bench.py --database sqlite:////work/bench-data/h15_console_10m.db \\
        --records 10000000 [--runs 10] [--rankings-cache-s 0 30]

Builds the ledger once with analytics_bench.py's agentic workload (skipped when it already
holds ``--records`` generations), starts the real gateway on loopback (uvicorn, the
console mounted), and for each page issues the JSON calls its script makes, concurrently
as the browser does, timing until the last answer arrives (p50/p95 over ``--runs``).  Two
viewers, each logged in through the console's form: the admin, and a plain key whose id is
the ledger's most active key (the bench gives that key id a known secret in the keys table,
so its session reads exactly what that key's owner would see).

Page weight: the page's HTML, stylesheet and scripts as sent to a browser that accepts
gzip (bytes on the wire), plus the JSON of its data calls.  Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from analytics_bench import busiest_key, ledger_for_bench

from tollway.app import build_app
from tollway.config import parse_settings
from tollway.ledger import schema
from tollway.ledger.keys import create_key, hash_key
from tollway.ledger.rollups import usage_monthly_model, usage_sessions

ADMIN_KEY = "sk-tw-console-bench-admin"
PLAIN_KEY = "sk-tw-console-bench-plain"
Call = tuple[str, str, dict[str, Any] | None]  # method, path, JSON body


def page_calls(first_model: str | None, filters: dict[str, str]) -> dict[str, list[Call]]:
    """The calls each page's script makes on load (see src/tollway/console/static/js/).

    The viewer's session scopes every call: the admin's are over all traffic, a plain key's
    over its own."""
    models: list[Call] = [("GET", "/api/v1/models", None)]
    if first_model:
        models.append(("GET", f"/api/v1/models/{first_model}/endpoints", None))
    return {
        "rankings": [("GET", "/api/v1/console/rankings?period=week&top=8", None)],
        "activity": [("GET", "/api/v1/console/activity", None),
                     ("GET", "/api/v1/console/generations", None),
                     ("GET", "/api/v1/console/tasks?top=15", None)],
        **{f"activity, log by {name}": [("GET", f"/api/v1/console/generations?{query}", None)]
           for name, query in filters.items()},
        "models": models,
        "keys": [("GET", "/api/v1/keys?include_disabled=true", None)],
        "providers": [("GET", "/api/v1/console/providers", None)],
    }


async def timed_page(client: httpx.AsyncClient, calls: list[Call]) -> tuple[float, int, list[int]]:
    started = time.perf_counter()
    responses = await asyncio.gather(*(client.request(m, p, json=b) for m, p, b in calls))
    took = (time.perf_counter() - started) * 1000
    return took, sum(len(r.content) for r in responses), [r.status_code for r in responses]


async def page_weight(client: httpx.AsyncClient, page: str) -> int:
    """HTML + CSS + scripts of a console page, gzip-encoded bytes as on the wire."""
    html = await client.get(f"/console/{page}", headers={"accept-encoding": "gzip"})
    total = len(html.content) if "content-encoding" not in html.headers else int(
        html.headers.get("content-length", len(html.content)))
    for asset in re.findall(r'(?:src|href)="(/console/static/[^"]+)"', html.text):
        async with client.stream("GET", asset, headers={"accept-encoding": "gzip"}) as response:
            total += sum([len(chunk) async for chunk in response.aiter_raw()])
    return total


async def logged_in(url: str, key: str) -> httpx.AsyncClient:
    """A client holding a console session for ``key`` and its CSRF header, as the browser has."""
    client = httpx.AsyncClient(base_url=url, timeout=120)
    login = await client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert csrf is not None
    done = await client.post("/console/login", data={"key": key, "csrf": csrf.group(1)})
    assert done.status_code == 303, done.text
    page_csrf = re.search(r'name="csrf-token" content="([^"]+)"', (await client.get("/console/activity")).text)
    assert page_csrf is not None
    client.headers["x-csrf-token"] = page_csrf.group(1)
    return client


async def measure(url: str, key_id: str, filters: dict[str, str], runs: int) -> None:
    admin = await logged_in(url, ADMIN_KEY)
    plain = await logged_in(url, PLAIN_KEY)
    try:
        catalog = (await admin.get("/api/v1/models")).json()["data"]
        first_model = catalog[0]["id"] if catalog else None
        print(f"{'page (view)':44} {'p50 ms':>8} {'p95 ms':>8} {'JSON KB':>8} {'page KB':>8}")
        for view, client in (("admin", admin), (f"key {key_id}", plain)):
            for page, calls in page_calls(first_model, filters).items():
                if page == "keys" and client is plain:
                    continue  # the keys page is the admin's
                await timed_page(client, calls)  # first touch: the database's page cache, the key cache
                samples = []
                size = 0
                for _ in range(runs):
                    took, size, statuses = await timed_page(client, calls)
                    assert all(s < 300 for s in statuses), (page, statuses)
                    samples.append(took)
                samples.sort()
                p95 = samples[min(len(samples) - 1, int(0.95 * len(samples)))]
                name = page.split(",")[0]
                weight = await page_weight(client, name) if name == page else 0
                shown = f"{(weight + size) / 1024:8.0f}" if weight else f"{'':>8}"
                print(f"{page + ' (' + view + ')':44} {statistics.median(samples):8.1f} {p95:8.1f} "
                      f"{size / 1024:8.1f} {shown}", flush=True)
    finally:
        await admin.aclose()
        await plain.aclose()


def give_secret(engine: Any, key_id: str) -> None:
    """Let PLAIN_KEY log in as ``key_id`` (the workload's key ids have no keys row of their own)."""
    k = schema.keys
    with engine.begin() as conn:
        if conn.execute(select(k.c.id).where(k.c.id == key_id)).first() is None:
            info, _ = create_key(conn, name=f"console bench ({key_id})")
            conn.execute(k.update().where(k.c.id == info.id).values(id=key_id))
        conn.execute(k.update().where(k.c.key_hash == hash_key(PLAIN_KEY), k.c.id != key_id).values(
            key_hash="retired-" + key_id))
        conn.execute(k.update().where(k.c.id == key_id).values(key_hash=hash_key(PLAIN_KEY), revoked_at=None,
                                                               expires_at=None, is_admin=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True)
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--port", type=int, default=18415)
    parser.add_argument("--rankings-cache-s", type=float, nargs="+", default=[0.0, 30.0],
                        help="console.rankings_cache_s, one server each; 0 measures every rankings call cold")
    args = parser.parse_args()
    engine, have = ledger_for_bench(args.database, args.records)
    with engine.connect() as conn:
        busiest = busiest_key(conn)
        # The log filtered by a middling model (the 50th by requests), a rare one (the 250th),
        # and by the busiest key's latest task.
        m = usage_monthly_model
        by_use = list(conn.execute(select(m.c.model).group_by(m.c.model)
                                   .order_by(func.sum(m.c.requests).desc())).scalars())
        s = usage_sessions
        task = conn.execute(select(s.c.session_id).where(s.c.key_id == busiest)
                            .order_by(s.c.last_seen.desc()).limit(1)).scalar() or ""
    filters = {"middling model": f"model={by_use[min(49, len(by_use) - 1)]}",
               "rare model": f"model={by_use[min(249, len(by_use) - 1)]}", "task": f"task={task}"}
    give_secret(engine, busiest)
    engine.dispose()
    print(f"ledger: {have:,} generations; key view: {busiest}; log filters: {filters}", flush=True)
    for cache_s in args.rankings_cache_s:
        print(f"console.rankings_cache_s: {cache_s:g} ({'cold' if cache_s == 0 else 'warm'})", flush=True)
        settings = parse_settings({"database": args.database, "admin_key": ADMIN_KEY,
                                   "console": {"rankings_cache_s": cache_s}}, source="console bench")
        server = uvicorn.Server(uvicorn.Config(build_app(settings), host="127.0.0.1", port=args.port,
                                               log_level="warning", access_log=False))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            asyncio.run(measure(f"http://127.0.0.1:{args.port}", busiest, filters, args.runs))
        finally:
            server.should_exit = True
            thread.join(30)


if __name__ == "__main__":
    main()
