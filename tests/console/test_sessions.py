"""Console sessions, CSRF, headers and scope over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import gzip
import os
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.support.servers import aiohttp_server, gateway_server, make_settings, new_key
from tests.support.stub_openai import StubOpenAI
from tollway.console.cache import ResponseCache
from tollway.console.sessions import RedisSessionStore, SessionStore

# A Redis database of its own: gateways configured with Redis also share limits and health there.
REDIS_URL = os.environ.get("TOLLWAY_TEST_CONSOLE_REDIS", "redis://127.0.0.1:6379/13")


@dataclass
class Server:
    url: str
    admin: str
    alice: tuple[str, str]
    bob: tuple[str, str]


def _server(database: str, console: dict[str, object]) -> Iterator[Server]:
    upstream = StubOpenAI()
    admin = "sk-tw-admin-" + secrets.token_hex(8)
    with aiohttp_server(upstream.app()) as upstream_url:
        settings = make_settings(database, upstream_url, extra={"admin_key": admin, "console": console})
        alice, bob = new_key(database, "alice"), new_key(database, "bob")
        with gateway_server(settings) as (url, _app):
            yield Server(url, admin, alice, bob)


@pytest.fixture
def server(database: str) -> Iterator[Server]:
    yield from _server(database, {})


def login(client: httpx.Client, key: str) -> httpx.Response:
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return client.post("/console/login", data={"key": key, "csrf": csrf.group(1)})


def page_csrf(client: httpx.Client, page: str = "/console/activity") -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', client.get(page).text)
    assert found is not None
    return found.group(1)


def test_login_sets_an_httponly_strict_session_cookie_that_is_not_the_key(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/console/login")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
        assert page.headers["x-frame-options"] == "DENY"

        wrong = login(client, "sk-tw-not-a-key")
        assert wrong.status_code == 401 and "invalid API key" in wrong.text and "tollway_session" not in client.cookies
        forged = client.post("/console/login", data={"key": server.alice[1], "csrf": "forged"})
        assert forged.status_code == 403 and "tollway_session" not in client.cookies

        ok = login(client, server.alice[1])
        assert ok.status_code == 303 and ok.headers["location"] == "/console/activity"
        cookie = next(h for h in ok.headers.get_list("set-cookie") if h.startswith("tollway_session="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
        assert server.alice[1] not in " ".join(ok.headers.get_list("set-cookie"))
        assert client.get("/api/v1/key").json()["data"]["label"].startswith(server.alice[1][:8])


def test_changes_need_the_csrf_token_and_log_out_ends_the_session(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        login(client, server.admin)
        refused = client.post("/api/v1/keys", json={"name": "no-csrf"})
        assert refused.status_code == 403 and "X-CSRF-Token" in refused.json()["error"]["message"]
        assert client.post("/api/v1/keys", json={"name": "bad"}, headers={"x-csrf-token": "nope"}).status_code == 403
        csrf = page_csrf(client)
        created = client.post("/api/v1/keys", json={"name": "with-csrf"}, headers={"x-csrf-token": csrf})
        assert created.status_code == 201
        reply = openai.OpenAI(base_url=server.url + "/v1", api_key=created.json()["key"], max_retries=0) \
            .chat.completions.create(model="test/echo", max_tokens=2, messages=[{"role": "user", "content": "x"}])
        assert reply.usage is not None and reply.usage.completion_tokens == 2

        assert client.post("/console/logout", data={"csrf": "wrong"}).status_code == 403
        assert client.get("/api/v1/console/activity").status_code == 200
        stale = client.cookies["tollway_session"]
        out = client.post("/console/logout", data={"csrf": csrf})
        assert out.status_code == 303
        after = httpx.get(server.url + "/api/v1/console/activity", cookies={"tollway_session": stale})
        assert after.status_code == 401 and "log in again" in after.json()["error"]["message"]


def test_a_revoked_key_loses_its_console_session(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        login(client, server.bob[1])
        assert client.get("/api/v1/console/generations").status_code == 200
        httpx.delete(f"{server.url}/api/v1/keys/{server.bob[0]}", headers={"Authorization": f"Bearer {server.admin}"})
        assert client.get("/api/v1/console/generations").status_code == 401
        assert client.get("/console/activity").headers["location"].startswith("/console/login")


def test_plain_key_scope_on_the_console_routes(server: Server) -> None:
    for key in (server.alice[1], server.bob[1]):
        openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0).chat.completions.create(
            model="test/echo", max_tokens=3, messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-session-id": f"task-{key[-6:]}"})
    import time

    deadline = time.monotonic() + 10
    admin = {"Authorization": f"Bearer {server.admin}"}
    while len(httpx.get(server.url + "/api/v1/console/generations", headers=admin).json()["data"]) < 2:
        assert time.monotonic() < deadline, "the ledger writer did not flush"
        time.sleep(0.05)
    alice = {"Authorization": f"Bearer {server.alice[1]}"}
    for path in ("/api/v1/console/generations", f"/api/v1/console/generations?key={server.bob[0]}"):
        rows = httpx.get(server.url + path, headers=alice).json()["data"]
        assert [r["key_id"] for r in rows] == [server.alice[0]]
    everyone = httpx.get(server.url + "/api/v1/console/generations", headers=admin).json()["data"]
    assert {r["key_id"] for r in everyone} == {server.alice[0], server.bob[0]}
    only_bob = httpx.get(server.url + f"/api/v1/console/generations?key={server.bob[0]}", headers=admin).json()
    assert [r["key_id"] for r in only_bob["data"]] == [server.bob[0]]
    tasks = httpx.get(server.url + f"/api/v1/console/tasks?key={server.bob[0]}", headers=alice).json()
    assert [t["session_id"] for t in tasks["largest"]] == [f"task-{server.alice[1][-6:]}"]
    series = httpx.get(server.url + "/api/v1/console/activity", headers=alice).json()
    assert series["totals"]["requests"] == 1 and series["totals"]["completion_tokens"] == 3
    assert httpx.get(server.url + "/api/v1/console/activity", headers=admin).json()["totals"]["requests"] == 2
    bad = httpx.get(server.url + "/api/v1/console/activity?from=yesterday", headers=alice)
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["error"]["message"]
    assert httpx.get(server.url + "/api/v1/keys", headers=alice).status_code == 403


def test_static_files_are_gzipped_and_the_chat_path_is_not(server: Server) -> None:
    with httpx.stream("GET", server.url + "/console/static/vendor/echarts/echarts.common.min.js",
                      headers={"accept-encoding": "gzip"}) as script:
        wire = b"".join(script.iter_raw())
    assert script.status_code == 200 and script.headers["content-encoding"] == "gzip"
    assert len(wire) < 300_000 < len(gzip.decompress(wire))
    assert "content-security-policy" in script.headers
    chat = httpx.post(server.url + "/v1/chat/completions", headers={"accept-encoding": "gzip",
                      "Authorization": f"Bearer {server.alice[1]}"},
                      json={"model": "test/echo", "max_tokens": 300, "messages": [{"role": "user", "content": "x"}]})
    assert chat.status_code == 200 and "content-encoding" not in chat.headers
    home = httpx.get(server.url + "/")
    assert home.status_code == 307 and home.headers["location"] == "/console"


def test_without_public_rankings_everything_needs_a_login(server: Server) -> None:
    assert httpx.get(server.url + "/api/v1/analytics/rankings").status_code == 401
    page = httpx.get(server.url + "/console/rankings")
    assert page.status_code == 303 and page.headers["location"] == "/console/login?next=/console/rankings"


def test_console_can_be_turned_off(tmp_path: pytest.TempPathFactory) -> None:
    for srv in _server(f"sqlite:///{tmp_path}/off.db", {"enabled": False}):
        assert httpx.get(srv.url + "/console/login").status_code == 404
        assert httpx.get(srv.url + "/api/v1/console/activity",
                         headers={"Authorization": f"Bearer {srv.admin}"}).status_code == 404


def run(coro: Any) -> Any:
    """Run a coroutine on a loop of its own thread: the browser tests' sync Playwright owns this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result(30)


def test_session_store_expires_and_bounds_sessions() -> None:
    run(_memory_store())


async def _memory_store() -> None:
    now = [0.0]
    store = SessionStore(ttl_s=10, max_sessions=2, clock=lambda: now[0])
    first, _ = await store.open("digest-1")
    second, _ = await store.open("digest-2")
    assert await store.get(first) is not None
    third, _ = await store.open("digest-3")
    assert await store.get(first) is None and await store.get(second) is not None and await store.get(third) is not None
    now[0] = 11
    assert await store.get(second) is None and await store.get(third) is None


def test_redis_session_store_keeps_sessions_under_hashed_ids() -> None:
    run(_redis_store())


async def _redis_store() -> None:
    import redis

    prefix = f"tollway-test:{secrets.token_hex(6)}:session:"
    store = RedisSessionStore(600, REDIS_URL, prefix=prefix)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        session_id, opened = await store.open("digest-a")
        found = await store.get(session_id)
        assert found is not None and (found.key_digest, found.csrf_token) == ("digest-a", opened.csrf_token)
        keys = [k.decode() for k in client.keys(prefix + "*")]
        assert len(keys) == 1 and session_id not in keys[0]
        assert 0 < client.ttl(keys[0]) <= 600
        await store.close(session_id)
        assert await store.get(session_id) is None and client.keys(prefix + "*") == []
    finally:
        for key in client.keys(prefix + "*"):
            client.delete(key)
        client.close()


def test_with_redis_a_session_works_on_every_replica(tmp_path: pytest.TempPathFactory) -> None:
    """Two gateways on one ledger and one Redis: log in on one, use the console on the other."""
    database = f"sqlite:///{tmp_path}/replicas.db"
    upstream = StubOpenAI()
    admin = "sk-tw-admin-" + secrets.token_hex(8)
    with aiohttp_server(upstream.app()) as upstream_url:
        settings = make_settings(database, upstream_url, extra={"admin_key": admin, "redis": REDIS_URL})
        _, alice = new_key(database, "alice")
        with gateway_server(settings) as (first, _a), gateway_server(settings) as (second, _b):
            with httpx.Client(base_url=first) as client:
                login(client, alice)
                cookie = client.cookies["tollway_session"]
                csrf = page_csrf(client)
            elsewhere = httpx.Client(base_url=second, cookies={"tollway_session": cookie})
            assert elsewhere.get("/api/v1/key").json()["data"]["label"].startswith(alice[:8])
            assert elsewhere.get("/console/activity").status_code == 200
            assert elsewhere.post("/console/logout", data={"csrf": csrf}).status_code == 303
            with httpx.Client(base_url=first, cookies={"tollway_session": cookie}) as back:
                assert back.get("/api/v1/key").status_code == 401
            elsewhere.close()


def test_response_cache_expires_and_bounds_entries() -> None:
    now = [0.0]
    cache = ResponseCache(max_entries=2, clock=lambda: now[0])
    cache.put(("admin", "a"), b"1", ttl_s=5)
    cache.put(("key:k", "a"), b"2", ttl_s=5)
    assert cache.get(("admin", "a")) == b"1" and cache.get(("key:k", "a")) == b"2"
    cache.put(("public", "a"), b"3", ttl_s=5)
    assert cache.get(("admin", "a")) is None
    now[0] = 6
    assert cache.get(("key:k", "a")) is None and cache.get(("public", "a")) is None
