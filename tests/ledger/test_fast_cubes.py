"""Migrations m009_fast_cubes and m010_cheaper_cubes fill their new tables from an existing
ledger exactly as the writer would have filled them, and drop the hourly histogram."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, inspect, select, text

from tests.analytics.helpers import db_url, ledger, record, write
from tollway.ledger.db import migrate
from tollway.ledger.detail import usage_daily_session_model
from tollway.ledger.rollups import usage_daily_key_model

__all__ = ["db_url"]  # the fixture, used by name

T0 = datetime(2026, 1, 30, 21, 17)  # a month boundary is crossed
NEW = (usage_daily_key_model, usage_daily_session_model)


def _traffic(n: int = 400) -> list[Any]:
    rng = random.Random(5)
    return [record(i, T0 + timedelta(minutes=rng.randint(0, 6 * 1440)), rng.choice(["a/x", "b/y"]),
                   key_id=rng.choice(["k1", "k2", None]), provider=rng.choice(["p1", "p2", None]),
                   app=rng.choice(["https://one.app", None]), app_title=rng.choice(["One", None]),
                   session_id=rng.choice([f"s{rng.randint(0, 9)}", None, ""]),
                   prompt_tokens=rng.randint(0, 9000), completion_tokens=rng.randint(0, 900),
                   cost_nanousd=rng.randint(0, 10**7), status=rng.choice(["success"] * 6 + ["error"]),
                   latency_ms=rng.choice([None, rng.randint(1, 9000)]))
            for i in range(n)]


def _dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(select(t))) for t in NEW}


def test_migrations_fill_the_new_cubes_as_the_writer_does(db_url: str) -> None:
    with ledger(db_url) as engine:
        write(engine, _traffic())
        written = _dump(engine)
        assert all(written.values())
        # The ledger as it was before m009/m010: their tables gone and the migrations not applied.
        with engine.begin() as conn:
            for table in NEW:
                table.drop(conn)
            conn.execute(text("DELETE FROM tollway_migrations WHERE name IN ('m009_fast_cubes', 'm010_cheaper_cubes')"))
        assert migrate(engine) == ["m009_fast_cubes", "m010_cheaper_cubes"]
        assert _dump(engine) == written
        with engine.connect() as conn:
            assert "usage_hourly_perf" not in inspect(conn).get_table_names()
