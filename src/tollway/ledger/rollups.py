"""Rollups: pre-aggregated usage that analytics reads instead of the raw ledger.

They are kept up to date in the ledger writer's transaction (:func:`apply_rollups` is a
``LedgerWriter`` batch hook), so a generation and its rollup contribution commit together.
Imported usage (``tollway usage import``) lands here too, tagged with its import batch
so a re-import of the same content is recognised and skipped.

Tables (all measures are exact integers; cost in nano-dollars):

* ``usage_hourly``: hour x model x provider x app x key x batch. The full-detail cube,
  for reports filtered by app or key.
* ``usage_daily_model``, ``usage_weekly_model``, ``usage_monthly_model``: period x model x
  provider x batch. The ranking cubes (model, author, origin, weights, provider, hosting
  country).  A year of weekly cube is at most 52 x (model, provider) pairs, which is
  what makes a year of weekly rankings answer in well under a second at any volume.
* ``usage_daily_rank`` (``m012_daily_rank``): day x model x batch, every provider summed.
  rankings-daily's year by day (and rankings by model, author, origin or weights) read its
  ~220 rows a day instead of ~390 by model and provider that they would re-group per call.
* ``usage_daily_key`` (day x key x batch) and ``usage_daily_app`` (day x app x batch), for
  rankings by key, the key owner's country and app, and for counting distinct users.
* ``usage_daily_key_model``: key x day x model x provider x app x batch, key first (its
  primary key leads with ``key_id``): one key's rankings and analytics (a plain key sees
  only its own traffic) read a contiguous slice instead of filtering the hourly cube.
* ``usage_daily_request_hist``: day x model x log bucket of tokens per request, counts of
  requests; gives p50/p90/p99 of tokens per request *approximately* (4 buckets per
  doubling, so a percentile is known to within one bucket, about +-12%).
* ``usage_sessions``: one row per task (``session_id``; its key is that of its earliest
  record), its exact token sums, so per-task distributions are *exact*.
* ``import_batches``: one row per imported file content (sha256), for idempotency.

On SQLite the rollups are ``WITHOUT ROWID`` tables: the composite primary key *is* the
b-tree, so an upsert touches one tree instead of a rowid table plus an index.

Missing dimensions are stored as ``''`` rather than NULL so they can be part of the
primary key (NULLs never conflict, which would break the upserts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
)

from tollway.ledger import schema
from tollway.ledger.definitions import DIMENSIONS, LEDGER_MEASURES
from tollway.ledger.definitions import bucket_bounds as bucket_bounds  # re-exported: callers import it from here
from tollway.ledger.definitions import token_bucket as token_bucket
from tollway.ledger.records import GenerationRecord

MEASURES = tuple(m.name for m in LEDGER_MEASURES)  # requests, errors, token sums, cost_nanousd
GATEWAY_BATCH = 0  # batch id of live gateway traffic; imports get 1, 2, ...
_MODEL, _PROVIDER, _APP, _KEY = (DIMENSIONS[name].py for name in ("model", "provider", "app", "key_id"))


def _measure_columns() -> list[Column[Any]]:
    return [Column(name, BigInteger, nullable=False, server_default="0") for name in MEASURES]


usage_hourly = Table(
    "usage_hourly",
    schema.metadata,
    Column("hour", DateTime, primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("provider", String(100), primary_key=True),
    Column("app", String(500), primary_key=True),
    Column("key_id", String(40), primary_key=True),
    Column("batch_id", Integer, primary_key=True),
    *_measure_columns(),
    sqlite_with_rowid=False,
)

def _cube(name: str, grain: str, dims: Sequence[tuple[str, int]]) -> Table:
    time_type: Any = DateTime if grain == "hour" else Date
    return Table(
        name,
        schema.metadata,
        Column(grain, time_type, primary_key=True),
        *[Column(dim, String(length), primary_key=True) for dim, length in dims],
        Column("batch_id", Integer, primary_key=True),
        *_measure_columns(),
        sqlite_with_rowid=False,
    )


_MODEL_DIMS = (("model", 200), ("provider", 100))
usage_daily_model = _cube("usage_daily_model", "day", _MODEL_DIMS)
usage_weekly_model = _cube("usage_weekly_model", "week", _MODEL_DIMS)
usage_monthly_model = _cube("usage_monthly_model", "month", _MODEL_DIMS)
# m012_daily_rank: day x model, the providers summed (the rankings by model-level dimensions).
usage_daily_rank = _cube("usage_daily_rank", "day", _MODEL_DIMS[:1])
usage_daily_key = _cube("usage_daily_key", "day", (("key_id", 40),))
usage_daily_app = _cube("usage_daily_app", "day", (("app", 500),))
# Key first (migration ``m009_fast_cubes``): one key's days are one contiguous range of the
# primary key, so a plain key's rankings, activity and analytics read only its own rows.
def _key_first(name: str, grain: str) -> Table:
    return Table(
        name,
        schema.metadata,
        Column("key_id", String(40), primary_key=True),
        Column(grain, Date, primary_key=True),
        Column("model", String(200), primary_key=True),
        Column("provider", String(100), primary_key=True),
        Column("app", String(500), primary_key=True),
        Column("batch_id", Integer, primary_key=True),
        *_measure_columns(),
        sqlite_with_rowid=False,
    )


usage_daily_key_model = _key_first("usage_daily_key_model", "day")


@dataclass(frozen=True, slots=True)
class Cube:
    """A rollup table summing :data:`MEASURES` by a time grain and some dimensions."""

    table: Table
    grain: str  # hour | day | week | month: also the name of its time column
    dims: tuple[str, ...]


CUBES = (
    Cube(usage_hourly, "hour", ("model", "provider", "app", "key_id")),
    Cube(usage_daily_model, "day", ("model", "provider")),
    Cube(usage_weekly_model, "week", ("model", "provider")),
    Cube(usage_monthly_model, "month", ("model", "provider")),
    Cube(usage_daily_key, "day", ("key_id",)),
    Cube(usage_daily_app, "day", ("app",)),
    Cube(usage_daily_key_model, "day", ("key_id", "model", "provider", "app")),
    Cube(usage_daily_rank, "day", ("model",)),
)
KEY_FIRST = next(c for c in CUBES if c.table is usage_daily_key_model)


usage_daily_request_hist = Table(
    "usage_daily_request_hist",
    schema.metadata,
    Column("day", Date, primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("bucket", SmallInteger, primary_key=True),
    Column("batch_id", Integer, primary_key=True),
    Column("requests", BigInteger, nullable=False, server_default="0"),
    sqlite_with_rowid=False,
)

usage_sessions = Table(
    "usage_sessions",
    schema.metadata,
    Column("session_id", String(200), primary_key=True),
    Column("batch_id", Integer, primary_key=True),
    Column("key_id", String(40), nullable=False, server_default=""),
    Column("first_seen", DateTime, nullable=False),
    Column("last_seen", DateTime, nullable=False),
    *_measure_columns(),
    Index("ix_usage_sessions_first_seen", "first_seen"),
    sqlite_with_rowid=False,
)

import_batches = Table(
    "import_batches",
    schema.metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("source", String(1000), nullable=False),
    Column("kind", String(16), nullable=False),  # events | day | week
    Column("rows", BigInteger, nullable=False),
    Column("imported_at", DateTime, nullable=False),
)

ROLLUP_TABLES = (*(c.table for c in CUBES), usage_daily_request_hist, usage_sessions)


def m002_rollups(conn: Connection) -> None:
    """Migration ``m002_rollups``: create the rollup and import tables (as they were then)."""
    for table in (*ROLLUP_TABLES, import_batches):
        if table not in (usage_daily_key_model, usage_daily_rank):  # m009_fast_cubes, m012_daily_rank
            table.create(conn, checkfirst=True)


def m009_fast_cubes(conn: Connection) -> None:
    """Migration ``m009_fast_cubes``: the key-first daily cube, filled from ``usage_hourly``
    (which has every key, model, provider and app, imports included)."""
    usage_daily_key_model.create(conn, checkfirst=True)
    # One key's days and tasks (the console's activity series, latest day and largest tasks).
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_usage_daily_key_key_day ON usage_daily_key (key_id, day)")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_usage_sessions_key_first_seen "
                         "ON usage_sessions (key_id, first_seen)")
    day = "hour::date" if conn.dialect.name == "postgresql" else "substr(hour, 1, 10)"
    sums = ", ".join(f"sum({m})" for m in MEASURES)
    conn.exec_driver_sql(
        f"INSERT INTO usage_daily_key_model (key_id, day, model, provider, app, batch_id, {', '.join(MEASURES)}) "
        f"SELECT key_id, {day}, model, provider, app, batch_id, {sums} FROM usage_hourly GROUP BY 1, 2, 3, 4, 5, 6")


def m012_daily_rank(conn: Connection) -> None:
    """Migration ``m012_daily_rank``: the day x model cube, filled from ``usage_daily_model``
    (the same sums with the provider kept; imports included, each under its batch)."""
    usage_daily_rank.create(conn, checkfirst=True)
    cols = ", ".join(MEASURES)
    sums = ", ".join(f"sum({m})" for m in MEASURES)
    conn.exec_driver_sql(
        f"INSERT INTO usage_daily_rank (day, model, batch_id, {cols}) "
        f"SELECT day, model, batch_id, {sums} FROM usage_daily_model GROUP BY day, model, batch_id "
        # PostgreSQL: rows stored in key order, as a live cube's roughly are (days are written
        # in turn), so a year by day reads them in day order without a sort.
        "ORDER BY day, model, batch_id")


class RollupDelta:
    """Accumulates contributions in memory, then upserts them with one statement per table.

    Aggregating first keeps a batch to one row per key (PostgreSQL refuses to update the
    same row twice in one ``INSERT ... ON CONFLICT``) and makes the database work scale
    with distinct keys, not records.
    """

    def __init__(self) -> None:
        self.cubes: list[dict[tuple[Any, ...], list[int]]] = [{} for _ in CUBES]
        self.hist: dict[tuple[Any, ...], int] = {}
        self.sessions: dict[tuple[str, int], list[Any]] = {}

    def add(self, *, at: datetime, model: str, provider: str, app: str, key_id: str, batch_id: int,
            measures: Sequence[int], session_id: str | None = None, per_request: bool = True) -> None:
        """Add one record (or one aggregate row when ``per_request`` is false).

        ``measures`` follows :data:`MEASURES`.  Aggregate rows carry no per-request sizes,
        so they stay out of the tokens-per-request histogram; event rows that stand for
        several requests enter it at their average size.
        """
        day = at.date()
        periods = {"hour": at.replace(minute=0, second=0, microsecond=0), "day": day,
                   "week": day - timedelta(days=day.weekday()), "month": day.replace(day=1)}
        dims = {"model": model, "provider": provider, "app": app, "key_id": key_id}
        for cube, target in zip(CUBES, self.cubes, strict=True):
            key = (periods[cube.grain], *(dims[d] for d in cube.dims), batch_id)
            acc = target.get(key)
            if acc is None:
                target[key] = list(measures)
            else:
                for i, value in enumerate(measures):
                    acc[i] += value
        requests = measures[0]
        if per_request and requests > 0:
            size = (measures[2] + measures[3]) // requests
            hkey = (day, model, token_bucket(size), batch_id)
            self.hist[hkey] = self.hist.get(hkey, 0) + requests
        if session_id:
            skey = (session_id, batch_id)
            sess = self.sessions.get(skey)
            if sess is None:
                self.sessions[skey] = [key_id, at, at, *measures]
            else:
                if at < sess[1]:  # the task's key is that of its earliest record
                    sess[0], sess[1] = key_id, at
                sess[2] = max(sess[2], at)
                for i, value in enumerate(measures):
                    sess[3 + i] += value

    def add_record(self, record: GenerationRecord) -> None:
        """Add one generation from the gateway (values as :mod:`tollway.ledger.definitions` derives them)."""
        self.add(
            at=record.created_at, model=_MODEL(record), provider=_PROVIDER(record), app=_APP(record),
            key_id=_KEY(record), batch_id=GATEWAY_BATCH, session_id=record.session_id,
            per_request=record.status != "error", measures=[m.py(record) for m in LEDGER_MEASURES],
        )

    def apply(self, conn: Connection) -> None:
        """Upsert everything accumulated, in key order (concurrent writers cannot deadlock)."""
        pg = conn.dialect.name == "postgresql"
        for cube, acc in zip(CUBES, self.cubes, strict=True):
            if acc:
                dims = (cube.grain, *cube.dims, "batch_id")
                _upsert(conn, cube.table, (*dims, *MEASURES), dims,
                        [(*k, *v) for k, v in sorted(acc.items())], _sum_updates(cube.table, MEASURES))
        if self.hist:
            t = usage_daily_request_hist
            _upsert(conn, t, ("day", "model", "bucket", "batch_id", "requests"),
                    ("day", "model", "bucket", "batch_id"),
                    [(*k, v) for k, v in sorted(self.hist.items())], _sum_updates(t, ("requests",)))
        if self.sessions:
            t = usage_sessions
            least, greatest = ("least", "greatest") if pg else ("min", "max")  # SQLite's 2-arg min is scalar
            updates = [*_sum_updates(t, MEASURES),
                       f"key_id = CASE WHEN excluded.first_seen < {t.name}.first_seen THEN excluded.key_id "
                       f"ELSE {t.name}.key_id END",
                       f"first_seen = {least}({t.name}.first_seen, excluded.first_seen)",
                       f"last_seen = {greatest}({t.name}.last_seen, excluded.last_seen)"]
            _upsert(conn, t, ("session_id", "batch_id", "key_id", "first_seen", "last_seen", *MEASURES),
                    ("session_id", "batch_id"), [(*k, *v) for k, v in sorted(self.sessions.items())], updates)


def _sum_updates(table: Table, names: Iterable[str]) -> list[str]:
    return [f"{n} = {table.name}.{n} + excluded.{n}" for n in names]


_PG_ARRAY = {DateTime: "timestamp[]", Date: "date[]", String: "text[]"}


def _upsert(conn: Connection, table: Table, columns: tuple[str, ...], conflict: tuple[str, ...],
            rows: list[tuple[Any, ...]], updates: list[str]) -> None:
    """``INSERT ... ON CONFLICT DO UPDATE`` at the driver level, one round trip per table.

    This is the ledger writer's hot path: going below SQLAlchemy's per-row bind processing
    makes it several times faster.  PostgreSQL gets one statement whose rows arrive as
    arrays (``unnest``); SQLite gets ``executemany`` with values in SQLAlchemy's own storage
    formats, so rows written here and through Core compare equal.
    """
    head = f"INSERT INTO {table.name} ({', '.join(columns)}) "
    tail = f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {', '.join(updates)}"
    if conn.dialect.name == "postgresql":
        casts = [_PG_ARRAY.get(type(table.c[c].type), "bigint[]") for c in columns]
        unnest = ", ".join(f"%(c{i})s::{cast}" for i, cast in enumerate(casts))
        params = {f"c{i}": [row[i] for row in rows] for i in range(len(columns))}
        conn.exec_driver_sql(f"{head}SELECT * FROM unnest({unnest}){tail}", params)
        return
    marks = ", ".join("?" * len(columns))
    times = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, Date | DateTime)]
    formatted: dict[Any, str] = {}  # a batch repeats the same few hours and days
    rows_out: list[tuple[Any, ...]] = []
    for row in rows:
        values = list(row)
        for i in times:
            text = formatted.get(values[i])
            if text is None:
                text = formatted[values[i]] = _sqlite_time(values[i])
            values[i] = text
        rows_out.append(tuple(values))
    conn.exec_driver_sql(f"{head}VALUES ({marks}){tail}", rows_out)


def _sqlite_time(value: date | datetime) -> str:
    # SQLAlchemy's SQLite storage formats for DateTime and Date.
    if isinstance(value, datetime):
        return (f"{value.year:04d}-{value.month:02d}-{value.day:02d} {value.hour:02d}:{value.minute:02d}:"
                f"{value.second:02d}.{value.microsecond:06d}")
    return value.isoformat()


# Requests refused before any provider was tried (unknown model, bad input, credit or
# rate limits) served nothing and cost nothing: they stay in ``generations`` (lookups,
# audits) but are no model's, author's, origin's or task's usage.  The set-based path
# filters its staged rows with the same rule in SQL (``ROLLUP_INPUT_SQL``).
ROLLUP_INPUT_SQL = "(provider IS NOT NULL OR status <> 'error' OR cost_nanousd <> 0)"


def enters_rollups(record: GenerationRecord) -> bool:
    """Whether a generation counts in the rollups (see ``ROLLUP_INPUT_SQL``)."""
    return record.provider is not None or record.status != "error" or record.cost_nanousd != 0


def apply_rollups(conn: Connection, records: Iterable[GenerationRecord]) -> None:
    """``LedgerWriter`` batch hook: fold a batch of generations into every rollup table."""
    from tollway.ledger.detail import DetailDelta  # late: detail.py builds on this module

    delta, detail = RollupDelta(), DetailDelta()
    for record in records:
        if enters_rollups(record):
            delta.add_record(record)
            detail.add_record(record)
    delta.apply(conn)
    detail.apply(conn)


def day_of(value: date | datetime | str) -> date:
    """A rollup ``day`` value as a date (SQLite may hand back ISO strings from raw SQL)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
