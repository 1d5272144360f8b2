"""A PostgreSQL outage: recently seen keys keep working (server.key_cache_stale_s), others get a
503 naming the database, and everything works again when it is back.

The outage is a TCP proxy of our own in front of the shared PostgreSQL, taken down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.support.servers import aiohttp_server, gateway_server, make_settings, new_key, postgres_database
from tests.support.stub_openai import StubOpenAI
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

HI = {"model": "test/echo", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}


def _chat(url: str, key: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=HI, headers={"Authorization": f"Bearer {key}"}, timeout=30)


@pytest.fixture
def proxied_database() -> Iterator[tuple[str, str, TcpProxy]]:
    """(direct URL, URL through the proxy, the proxy) of a fresh PostgreSQL database."""
    with postgres_database() as direct:
        url = make_url(direct)
        with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            yield direct, url.set(port=proxy.port).render_as_string(hide_password=False), proxy


def _gateway(database: str, upstream_url: str, stale_s: float) -> Any:
    return make_settings(database, upstream_url, extra={
        "server": {"key_cache_ttl_s": 0, "key_cache_stale_s": stale_s}})


def test_recently_seen_keys_ride_out_a_database_outage(proxied_database: tuple[str, str, TcpProxy]) -> None:
    direct, proxied, proxy = proxied_database
    _, seen = new_key(direct, name="seen")
    _, unseen = new_key(direct, name="unseen")
    upstream = StubOpenAI()
    with aiohttp_server(upstream.app()) as upstream_url, \
            gateway_server(_gateway(proxied, upstream_url, 60)) as (url, _app):
        assert _chat(url, seen).status_code == 200
        proxy.down()
        try:
            during = _chat(url, seen)
            refused = _chat(url, unseen)
        finally:
            proxy.up()
        assert during.status_code == 200, during.text
        assert refused.status_code == 503, refused.text
        assert "database" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "1"
        assert _chat(url, unseen).status_code == 200


def test_without_a_stale_window_an_outage_is_a_503_for_every_key(
        proxied_database: tuple[str, str, TcpProxy]) -> None:
    direct, proxied, proxy = proxied_database
    _, key = new_key(direct)
    upstream = StubOpenAI()
    with aiohttp_server(upstream.app()) as upstream_url, \
            gateway_server(_gateway(proxied, upstream_url, 0)) as (url, _app):
        assert _chat(url, key).status_code == 200
        proxy.down()
        try:
            during = _chat(url, key)
            anthropic = httpx.post(url + "/v1/messages", json=HI, headers={"x-api-key": key}, timeout=30)
            admin_view = httpx.get(url + "/api/v1/key", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        finally:
            proxy.up()
        assert during.status_code == 503 and "database" in during.json()["error"]["message"]
        assert anthropic.status_code == 503
        assert anthropic.json()["error"]["type"] == "overloaded_error"
        assert admin_view.status_code == 503
        assert _chat(url, key).status_code == 200
