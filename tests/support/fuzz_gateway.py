"""A gateway set up to be fuzzed: PostgreSQL ledger (the stricter driver), a lenient upstream,
the admin key, an unlimited and a limited key, and a target key for the admin API to change."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import func, select

from tests.support.lenient_upstream import LenientUpstream
from tests.support.servers import aiohttp_server, gateway_server, make_settings, new_key, postgres_database
from tollway.ledger.db import create_db_engine
from tollway.ledger.schema import generations

ADMIN_KEY = "fuzz-admin-key"
MODEL = "test/echo"


@dataclass
class FuzzTarget:
    url: str
    app: Any
    database: str
    upstream: LenientUpstream
    keys: dict[str, str] = field(default_factory=dict)  # role -> plain key
    key_ids: dict[str, str] = field(default_factory=dict)

    def recorded(self, generation_id: str) -> bool:
        """Is this generation in the ledger table itself (not just pending in the writer)?"""
        assert self.app.state.gateway.writer.flush(20), "ledger writer did not drain"
        engine = create_db_engine(self.database)
        try:
            with engine.connect() as conn:
                return bool(conn.execute(select(func.count()).select_from(generations)
                                         .where(generations.c.id == generation_id)).scalar())
        finally:
            engine.dispose()

    def normal_chat(self) -> httpx.Response:
        return httpx.post(self.url + "/v1/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {self.keys['plain']}"},
                          json={"model": MODEL, "max_tokens": 3, "messages": [{"role": "user", "content": "hi"}]})


@contextmanager
def fuzz_target() -> Iterator[FuzzTarget]:
    upstream = LenientUpstream()
    with aiohttp_server(upstream.app()) as upstream_url, postgres_database() as database:
        settings = make_settings(database, upstream_url, extra={"admin_key": ADMIN_KEY})
        target = FuzzTarget(url="", app=None, database=database, upstream=upstream)
        for role, kwargs in (("plain", {}), ("limited", {"limit_nanousd": 50_000_000}),
                             ("target", {"limit_nanousd": 10**9})):
            key_id, plain = new_key(database, name=role, **kwargs)
            target.keys[role], target.key_ids[role] = plain, key_id
        with gateway_server(settings) as (url, app):
            target.url, target.app = url, app
            yield target
