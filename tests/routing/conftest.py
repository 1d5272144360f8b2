"""A fleet for routing tests: several stub upstreams, the real gateway over uvicorn, a key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import orjson
from sqlalchemy import select

from tests.routing.stubs import Stub
from tests.support.servers import aiohttp_server, gateway_server, new_key
from tollway.config import parse_settings
from tollway.ledger.db import create_db_engine
from tollway.ledger.schema import generations

MODEL = "moonshotai/kimi-k2.5"


@dataclass
class Fleet:
    url: str
    app: Any
    key: str
    database: str
    stubs: dict[str, Stub]

    @property
    def gateway(self) -> Any:
        return self.app.state.gateway

    def client(self, key: str | None = None, **headers: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key or self.key, max_retries=0,
                             default_headers=headers or None, timeout=30)

    def ask(self, provider: dict[str, Any] | None = None, *, model: str = MODEL, key: str | None = None,
            **kwargs: Any) -> Any:
        extra: dict[str, Any] = dict(kwargs.pop("extra_body", {}))
        if provider is not None:
            extra["provider"] = provider
        return self.client(key).chat.completions.create(
            model=model, messages=kwargs.pop("messages", [{"role": "user", "content": "hi"}]),
            extra_body=extra or None, **kwargs)

    def generations(self) -> list[dict[str, Any]]:
        """Every ledger row, oldest first, with ``attempts`` decoded."""
        assert self.gateway.writer.flush(10), "ledger writer did not drain"
        engine = create_db_engine(self.database)
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(generations))]
        engine.dispose()
        for row in rows:
            row["attempts"] = orjson.loads(row["attempts"]) if row["attempts"] else None
        return sorted(rows, key=lambda r: r["created_at"])


def served_by(response: Any) -> str:
    """The provider the gateway says served a completion (OpenRouter's ``provider`` field)."""
    return str(response.model_dump()["provider"])


def endpoint(provider: str, prompt: float, completion: float | None = None, **extra: Any) -> dict[str, Any]:
    return {"provider": provider, "model": f"{provider}-kimi",
            "pricing": {"prompt": str(prompt), "completion": str(completion if completion is not None
                                                                 else prompt)}, **extra}


@contextmanager
def fleet(tmp_path: Path, stubs: list[Stub], *, endpoints: list[dict[str, Any]] | None = None,
          provider_extra: dict[str, dict[str, Any]] | None = None,
          models: list[dict[str, Any]] | None = None, routing: dict[str, Any] | None = None,
          timeouts: dict[str, Any] | None = None, key_kwargs: dict[str, Any] | None = None,
          extra: dict[str, Any] | None = None) -> Iterator[Fleet]:
    """Serve ``stubs`` and a gateway whose model ``MODEL`` has an endpoint at each (by default $1,
    $2, $3... per million tokens in list order)."""
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    with ExitStack() as stack:
        urls = {s.name: stack.enter_context(aiohttp_server(s.app())) for s in stubs}
        providers = [{"name": s.name, "kind": "openai", "base_url": urls[s.name] + "/v1", "api_key": "sk-up",
                      **(provider_extra or {}).get(s.name, {})} for s in stubs]
        eps = endpoints or [endpoint(s.name, i + 1) for i, s in enumerate(stubs)]
        raw: dict[str, Any] = {
            "database": database, "catalog": False,
            "server": {"key_cache_ttl_s": 0}, "ledger": {"flush_interval_ms": 5},
            "providers": providers,
            "models": [{"id": MODEL, "author": "moonshotai", "author_country": "CN", "endpoints": eps},
                       *(models or [])],
            "routing": {"seed": 1234, **(routing or {})},
            "timeouts": {"connect": 2, "first_byte": 5, "idle": 5, "total": 30, **(timeouts or {})},
            **(extra or {}),
        }
        settings = parse_settings(raw, source="test")
        _, key = new_key(database, **(key_kwargs or {}))
        url, app = stack.enter_context(gateway_server(settings))
        yield Fleet(url=url, app=app, key=key, database=database, stubs={s.name: s for s in stubs})
