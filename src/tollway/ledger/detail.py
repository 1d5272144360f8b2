"""The analytics cubes (migrations ``m007_analytics``, ``m010_cheaper_cubes``, ``m011_wide_histograms``),
declared once for both paths.

``/api/v1/analytics/query`` splits traffic by more than the ranking cubes keep (the API
used, the finish reason, the prompt-size bucket) and reports latency, throughput and
time-to-first-token percentiles.  Those come from these tables:

* ``usage_hourly_detail`` / ``usage_daily_detail``: period x model x provider x app x key x
  api x finish reason x context bucket, summing :data:`DETAIL_MEASURES` (the ledger's
  token and cost sums plus fallbacks, cache hits and latency/TTFT sums for averages).
* ``usage_daily_model_detail``: day x model x provider, the same sums (the cube most
  queries read).
* ``usage_monthly_model_detail`` / ``usage_monthly_hist``: the same by month, for the
  whole months of long ranges.
* ``usage_daily_hist`` (``m011_wide_histograms``): day x model x provider x metric
  (``latency``, ``throughput``, ``ttft``), one row with a request count per log bucket
  (:func:`token_bucket`, 4 buckets per doubling; columns ``b0`` .. ``b95``, values above the
  last bucket's range clamped into it: :data:`~tollway.ledger.definitions.HIST_BUCKETS`):
  percentiles known to within one bucket.  ``m007``'s narrow histograms (a row per bucket:
  ``usage_hourly_perf``, dropped by ``m010_cheaper_cubes``; ``usage_daily_perf`` and
  ``usage_monthly_perf``, pivoted into the wide ones and dropped by ``m011_wide_histograms``)
  had ~25x more rows for a year's percentiles.
* ``usage_daily_session_model`` (``m010_cheaper_cubes``): day x task (``session_id``) x app
  x model x key, its requests and cost: session-cost's per-task sums.

Their dimensions and measures are the :class:`~tollway.ledger.definitions.Expr` rows of
:mod:`tollway.ledger.definitions`: the live writer's path (:class:`DetailDelta`) calls their
Python, the bulk path (:func:`detail_statements`) generates SQL from their SQL.  Adding a
dimension is one row in ``DETAIL_DIMS`` (and a migration for its column).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, Date, DateTime, Integer, SmallInteger, String, Table

from tollway.ledger import schema
from tollway.ledger.definitions import (
    DETAIL_DIMS,
    DETAIL_MEASURES,
    HIST_BUCKETS,
    HIST_COLUMNS,
    MEASURE_NAMES,
    MODEL_DIMS,
    PERF_DIMS,
    PERF_METRICS,
    PERF_STAGE_COLUMNS,
    SESSION_DIMS,
    SESSION_MEASURES,
    Expr,
    perf_buckets,
)
from tollway.ledger.records import GenerationRecord
from tollway.ledger.rollups import (
    GATEWAY_BATCH,
    ROLLUP_INPUT_SQL,
    _sum_updates,
    _upsert,
    enters_rollups,
)


def _table(name: str, grain: str, dims: tuple[Expr, ...], extra: list[Column[Any]], measures: tuple[str, ...]
           ) -> Table:
    time_type: Any = DateTime if grain == "hour" else Date
    return Table(
        name, schema.metadata,
        Column(grain, time_type, primary_key=True),
        *[Column(d.name, String(d.length), primary_key=True) for d in dims],
        *extra,
        Column("batch_id", Integer, primary_key=True),
        *[Column(m, BigInteger, nullable=False, server_default="0") for m in measures],
        sqlite_with_rowid=False,
    )


def _perf_keys() -> list[Column[Any]]:
    return [Column("metric", String(12), primary_key=True), Column("bucket", SmallInteger, primary_key=True)]


usage_hourly_detail = _table("usage_hourly_detail", "hour", DETAIL_DIMS, [], MEASURE_NAMES)
usage_daily_detail = _table("usage_daily_detail", "day", DETAIL_DIMS, [], MEASURE_NAMES)
# The small daily cube of the common questions (by model or provider, any metric but the
# splits by app, key, api, finish reason or context): a few hundred rows a day.
usage_daily_model_detail = _table("usage_daily_model_detail", "day", MODEL_DIMS, [], MEASURE_NAMES)
# m007's narrow histograms by model and provider (a row per bucket), kept here for m007 and
# the migrations that drop them.  The hourly one had ~1 row per record and metric at a
# gateway's volume: dropped by m010_cheaper_cubes (hourly percentiles come from a <= 3 h
# window's rows).  The daily and monthly ones: pivoted and dropped by m011_wide_histograms.
usage_hourly_perf = _table("usage_hourly_perf", "hour", PERF_DIMS, _perf_keys(), ("requests",))
usage_daily_perf = _table("usage_daily_perf", "day", PERF_DIMS, _perf_keys(), ("requests",))
usage_monthly_perf = _table("usage_monthly_perf", "month", PERF_DIMS, _perf_keys(), ("requests",))
# Whole months of a long range: a year of these is a few thousand rows per model and provider.
usage_monthly_model_detail = _table("usage_monthly_model_detail", "month", MODEL_DIMS, [], MEASURE_NAMES)
# The wide histograms (m011_wide_histograms): a row per period, model, provider and metric
# with a count per bucket (HIST_COLUMNS; values above the last bucket's range are clamped into
# it by perf_buckets), so a year's percentiles by model sum a row per metric rather than one
# per bucket.
usage_daily_hist = _table("usage_daily_hist", "day", PERF_DIMS, _perf_keys()[:1], HIST_COLUMNS)
usage_monthly_hist = _table("usage_monthly_hist", "month", PERF_DIMS, _perf_keys()[:1], HIST_COLUMNS)
# The same by calendar quarter (m013_quarterly_hist): a year's percentiles by model read ~4
# quarters' rows (whole quarters of the range; months and days at its edges) instead of ~12 months'.
usage_quarterly_hist = _table("usage_quarterly_hist", "quarter", PERF_DIMS, _perf_keys()[:1], HIST_COLUMNS)
# Tasks (X-Session-Id) by day, app, model and key: session-cost's medians read a month of these
# (a row per task and day) instead of the ledger's rows.
usage_daily_session_model = _table("usage_daily_session_model", "day", SESSION_DIMS, [],
                                   tuple(m.name for m in SESSION_MEASURES))


@dataclass(frozen=True, slots=True)
class DetailCube:
    """An analytics cube: its dimensions are a prefix of :data:`DETAIL_DIMS` (hourly cubes: all of
    their kind's), so the live path slices one tuple and the bulk path re-sums the batch's cells."""

    table: Table
    grain: str  # hour | day | month | quarter (histograms only)
    dims: tuple[Expr, ...]
    perf: bool  # a histogram (metric -> a count per bucket) rather than a sum of measures

    def __post_init__(self) -> None:
        assert self.dims == DETAIL_DIMS[:len(self.dims)]
        assert self.grain != "hour" or (self.dims == DETAIL_DIMS and not self.perf)
        assert self.grain != "quarter" or self.perf


DETAIL_CUBES = (
    DetailCube(usage_hourly_detail, "hour", DETAIL_DIMS, False),
    DetailCube(usage_daily_detail, "day", DETAIL_DIMS, False),
    DetailCube(usage_daily_model_detail, "day", MODEL_DIMS, False),
    DetailCube(usage_daily_hist, "day", PERF_DIMS, True),
    DetailCube(usage_monthly_model_detail, "month", MODEL_DIMS, False),
    DetailCube(usage_monthly_hist, "month", PERF_DIMS, True),
    DetailCube(usage_quarterly_hist, "quarter", PERF_DIMS, True),
)
DETAIL_TABLES = (*(c.table for c in DETAIL_CUBES), usage_daily_session_model)
PERF_CUBES = tuple(c for c in DETAIL_CUBES if c.perf)
SUM_CUBES = tuple(c for c in DETAIL_CUBES if not c.perf)


def m007_analytics(conn: Connection) -> None:
    """Migration ``m007_analytics``: the analytics cubes (as they were then), filled from here on."""
    for table in (usage_hourly_detail, usage_daily_detail, usage_daily_model_detail, usage_hourly_perf,
                  usage_daily_perf, usage_monthly_model_detail, usage_monthly_perf):
        table.create(conn, checkfirst=True)


def m010_cheaper_cubes(conn: Connection) -> None:
    """Migration ``m010_cheaper_cubes``: drop the hourly histograms by model and provider (the
    daily and monthly ones stay), and add the per-task cube, filled from the ledger's rows (the
    rows the rollups count: :data:`ROLLUP_INPUT_SQL`)."""
    usage_hourly_perf.drop(conn, checkfirst=True)
    t = usage_daily_session_model
    t.create(conn, checkfirst=True)
    day = "created_at::date" if conn.dialect.name == "postgresql" else "substr(created_at, 1, 10)"
    dims = [d.name for d in SESSION_DIMS]
    conn.exec_driver_sql(
        f"INSERT INTO {t.name} (day, {', '.join(dims)}, batch_id, {', '.join(m.name for m in SESSION_MEASURES)}) "
        f"SELECT {day}, {', '.join(d.sql for d in SESSION_DIMS)}, {GATEWAY_BATCH}, "
        f"{', '.join(f'sum({m.sql})' for m in SESSION_MEASURES)} FROM generations "
        f"WHERE session_id IS NOT NULL AND session_id <> '' AND {ROLLUP_INPUT_SQL} "
        f"GROUP BY {', '.join(str(i + 1) for i in range(1 + len(dims)))}")


def m011_wide_histograms(conn: Connection) -> None:
    """Migration ``m011_wide_histograms``: the daily and monthly histograms as wide rows (a count
    column per bucket), pivoted in SQL from ``m007``'s narrow ones, which are then dropped.
    Buckets above the last column's are clamped into it, as :func:`perf_buckets` does."""
    top = HIST_BUCKETS - 1
    for old, new in ((usage_daily_perf, usage_daily_hist), (usage_monthly_perf, usage_monthly_hist)):
        new.create(conn, checkfirst=True)
        keys = _key_columns(next(c for c in DETAIL_CUBES if c.table is new))
        bucket = f"CASE WHEN bucket > {top} THEN {top} ELSE bucket END"
        conn.exec_driver_sql(
            f"INSERT INTO {new.name} ({', '.join((*keys, *HIST_COLUMNS))}) "
            f"SELECT {', '.join(keys)}, {hist_pivot(bucket, 'requests')} FROM {old.name} "
            f"GROUP BY {', '.join(keys)}")
        old.drop(conn)


def quarter_of(day: date) -> date:
    """The first day of ``day``'s calendar quarter."""
    return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)


def m013_quarterly_hist(conn: Connection) -> None:
    """Migration ``m013_quarterly_hist``: the histograms by quarter, summed from the monthly ones
    (every month lies in one quarter), in key order so PostgreSQL stores a quarter's rows together."""
    t = usage_quarterly_hist
    t.create(conn, checkfirst=True)
    keys = _key_columns(next(c for c in DETAIL_CUBES if c.table is t))
    kind = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    period = _PERIOD_OF_DAY_SQL[(kind, "quarter")].format(day="month")
    n = ", ".join(str(i + 1) for i in range(len(keys)))
    conn.exec_driver_sql(
        f"INSERT INTO {t.name} ({', '.join((*keys, *HIST_COLUMNS))}) "
        f"SELECT {period}, {', '.join(keys[1:])}, {', '.join(f'sum({b})' for b in HIST_COLUMNS)} "
        f"FROM {usage_monthly_hist.name} GROUP BY {n} ORDER BY {n}")


def _period(at: datetime, grain: str) -> date | datetime:
    if grain == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    if grain == "quarter":
        return quarter_of(at.date())
    return at.date().replace(day=1) if grain == "month" else at.date()


class DetailDelta:
    """A batch's contributions to the analytics cubes, summed in Python: every cube on the live
    path; the histograms on the bulk path (whose sums come from SQL: :func:`detail_statements`)."""

    def __init__(self, cubes: tuple[DetailCube, ...] = DETAIL_CUBES) -> None:
        self.cubes = cubes
        self.cells: list[dict[tuple[Any, ...], list[int]]] = [{} for _ in cubes]
        self._dims = DETAIL_DIMS[:max((len(c.dims) for c in cubes), default=0)]
        self._sums = any(not c.perf for c in cubes)
        self.sessions: dict[tuple[Any, ...], list[int]] = {}  # usage_daily_session_model

    def add_session(self, record: GenerationRecord) -> None:
        skey = (record.created_at.date(), *(d.py(record) for d in SESSION_DIMS), GATEWAY_BATCH)
        sess = self.sessions.get(skey)
        if sess is None:
            self.sessions[skey] = [m.py(record) for m in SESSION_MEASURES]
        else:
            for i, m in enumerate(SESSION_MEASURES):
                sess[i] += m.py(record)

    def add_record(self, record: GenerationRecord) -> None:
        if record.session_id:
            self.add_session(record)
        dims = tuple(d.py(record) for d in self._dims)
        measures = [m.py(record) for m in DETAIL_MEASURES] if self._sums else []
        perf = list(zip(PERF_METRICS, perf_buckets(record.status, record.latency_ms, record.ttft_ms,
                                               record.completion_tokens), strict=True))
        for cube, acc in zip(self.cubes, self.cells, strict=True):
            head = (_period(record.created_at, cube.grain), *dims[:len(cube.dims)])
            if cube.perf:
                for metric, bucket in perf:
                    if bucket is not None:
                        key = (*head, metric, GATEWAY_BATCH)
                        cell = acc.get(key)
                        if cell is None:
                            cell = acc[key] = [0] * HIST_BUCKETS
                        cell[bucket] += 1
                continue
            key = (*head, GATEWAY_BATCH)
            cell = acc.get(key)
            if cell is None:
                acc[key] = list(measures)
            else:
                for i, value in enumerate(measures):
                    cell[i] += value

    def apply(self, conn: Connection) -> None:
        for cube, acc in zip(self.cubes, self.cells, strict=True):
            if not acc:
                continue
            keys = _key_columns(cube)
            measures = HIST_COLUMNS if cube.perf else MEASURE_NAMES
            _upsert(conn, cube.table, (*keys, *measures), keys, [(*k, *v) for k, v in sorted(acc.items())],
                    _sum_updates(cube.table, measures))
        if self.sessions:
            t = usage_daily_session_model
            keys = ("day", *(d.name for d in SESSION_DIMS), "batch_id")
            measures = tuple(m.name for m in SESSION_MEASURES)
            _upsert(conn, t, (*keys, *measures), keys, [(*k, *v) for k, v in sorted(self.sessions.items())],
                    _sum_updates(t, measures))


def _key_columns(cube: DetailCube) -> tuple[str, ...]:
    perf = ("metric",) if cube.perf else ()
    return (cube.grain, *(d.name for d in cube.dims), *perf, "batch_id")


def session_delta(records: Iterable[GenerationRecord]) -> DetailDelta:
    """The bulk path's task cube (a row per task and day: summed here, on the thread that
    prepares the batch, as :func:`~tollway.ledger.bulk.per_record_sums` does for the tasks)."""
    delta = DetailDelta(())
    for r in records:
        if r.session_id and enters_rollups(r):
            delta.add_session(r)
    return delta


def apply_detail(conn: Connection, records: list[GenerationRecord]) -> None:
    """Fold a batch of generations into the analytics cubes (live path)."""
    delta = DetailDelta()
    for record in records:
        delta.add_record(record)
    delta.apply(conn)


_HOUR_SQL = {"sqlite": "substr(created_at, 1, 13) || ':00:00.000000'", "postgresql": "date_trunc('hour', created_at)"}
_DAY_SQL = {"sqlite": "substr(created_at, 1, 10)", "postgresql": "created_at::date"}
# A histogram period from a day (the bulk path's daily cells; m013 from a month, which is its first day).
_PERIOD_OF_DAY_SQL = {("sqlite", "month"): "substr({day}, 1, 7) || '-01'",
                      ("postgresql", "month"): "date_trunc('month', {day})::date",
                      ("sqlite", "quarter"): "substr({day}, 1, 5) || CASE WHEN substr({day}, 6, 2) < '04' THEN '01' "
                                             "WHEN substr({day}, 6, 2) < '07' THEN '04' WHEN substr({day}, 6, 2) < "
                                             "'10' THEN '07' ELSE '10' END || '-01'",
                      ("postgresql", "quarter"): "date_trunc('quarter', {day})::date"}
_FROM_HOUR_SQL = {("sqlite", "day"): "substr(hour, 1, 10)", ("postgresql", "day"): "hour::date",
                  ("sqlite", "month"): "substr(hour, 1, 7) || '-01'",
                  ("postgresql", "month"): "date_trunc('month', hour)::date"}
DETAIL_CELLS = "tollway_stage_detail"
PERF_CELLS = "tollway_stage_perf"
HIST_CELLS = "tollway_stage_hist"


def hist_pivot(bucket: str, count: str) -> str:
    """SQL summing narrow histogram rows (``bucket``, ``count``) into the wide row's
    :data:`HIST_COLUMNS` (the bulk path and ``m011_wide_histograms``)."""
    return ", ".join(f"sum(CASE WHEN {bucket} = {i} THEN {count} ELSE 0 END)" for i in range(HIST_BUCKETS))


def ensure_detail_stage(conn: Connection) -> None:
    """This connection's TEMP tables for a batch's hourly sums and daily histogram cells
    (created once, emptied per batch)."""
    # Bytewise text on PostgreSQL (COLLATE "C"), as bulk.ensure_stage: the daily re-sums group
    # and sort these columns, several times cheaper than under a locale collation.
    text = 'text COLLATE "C"' if conn.dialect.name == "postgresql" else "text"
    dims = ", ".join(f"{d.name} {text}" for d in DETAIL_DIMS)
    measures = ", ".join(f"{m} bigint" for m in MEASURE_NAMES)
    perf_dims = ", ".join(f"{d.name} {text}" for d in PERF_DIMS)
    counts = ", ".join(f"{b} bigint" for b in HIST_COLUMNS)
    tables = {DETAIL_CELLS: f"hour timestamp, {dims}, {measures}",
              PERF_CELLS: f"day date, {perf_dims}, metric {text}, bucket smallint, requests bigint",
              HIST_CELLS: f"day date, {perf_dims}, metric {text}, {counts}"}
    for name, columns in tables.items():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS")
        else:
            conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns})")
            conn.exec_driver_sql(f"DELETE FROM temp.{name}")


def detail_statements(dialect: str, stage: str) -> list[tuple[str, str]]:
    """The bulk path's sums, generated from the same :class:`Expr` rows as :class:`DetailDelta`.

    The staged batch is summed once into its hourly cells and once into its daily histogram
    cells (buckets computed in Python while staging: :func:`perf_buckets`), those pivoted once
    into wide daily cells (:func:`hist_pivot`); the hourly sums cube and the daily histograms
    take their cells as they are, the other cubes re-sum them.
    (No hourly histogram by model and provider is kept: it had a row per record and metric.)
    """
    pg = dialect == "postgresql"
    kind = "postgresql" if pg else "sqlite"
    where = "" if pg else " WHERE true"  # SQLite: INSERT ... SELECT ... ON CONFLICT needs a WHERE

    def text(sql: str) -> str:
        return f'{sql} COLLATE "C"' if pg else sql  # bytewise, the order the live path sorts in

    def numbers(n: int) -> str:
        return ", ".join(str(i + 1) for i in range(n))

    names = [d.name for d in DETAIL_DIMS]
    sums = ", ".join(f"sum({m.sql})" for m in DETAIL_MEASURES)
    out = [(DETAIL_CELLS, f"INSERT INTO {DETAIL_CELLS} SELECT {_HOUR_SQL[kind]}, "
                          f"{', '.join(text(d.sql) for d in DETAIL_DIMS)}, {sums} FROM {stage} "
                          f"WHERE {ROLLUP_INPUT_SQL} GROUP BY {numbers(1 + len(names))}")]
    perf_names = [d.name for d in PERF_DIMS]
    perf_dims = ", ".join(f"{text(d.sql)} AS {d.name}" for d in PERF_DIMS)
    unpivot = " UNION ALL ".join(f"SELECT {_DAY_SQL[kind]} AS day, {perf_dims}, '{m}' AS metric, {col} AS bucket "
                                 f"FROM {stage} WHERE {col} IS NOT NULL AND {ROLLUP_INPUT_SQL}"
                                 for m, col in zip(PERF_METRICS, PERF_STAGE_COLUMNS, strict=True))
    out.append((PERF_CELLS, f"INSERT INTO {PERF_CELLS} SELECT day, {', '.join(perf_names)}, metric, bucket, count(*) "
                            f"FROM ({unpivot}) p GROUP BY {numbers(3 + len(perf_names))}"))
    # Pivoted once into wide daily cells (a row per day, model, provider and metric), which the
    # daily histograms take as they are and the monthly ones re-sum.
    out.append((HIST_CELLS, f"INSERT INTO {HIST_CELLS} SELECT day, {', '.join(perf_names)}, metric, "
                            f"{hist_pivot('bucket', 'requests')} FROM {PERF_CELLS} "
                            f"GROUP BY {numbers(2 + len(perf_names))}"))
    for cube in DETAIL_CUBES:
        keys = _key_columns(cube)
        dims = [d.name for d in cube.dims] + (["metric"] if cube.perf else [])
        measures = HIST_COLUMNS if cube.perf else MEASURE_NAMES
        source = HIST_CELLS if cube.perf else DETAIL_CELLS
        finest = "day" if cube.perf else "hour"  # the grain of the cube's cells
        if cube.grain == finest:
            select = f"SELECT {finest}, {', '.join(dims)}, {GATEWAY_BATCH}, {', '.join(measures)} " \
                     f"FROM {source}{where}"
        else:
            period = _PERIOD_OF_DAY_SQL[(kind, cube.grain)].format(day="day") if cube.perf else \
                _FROM_HOUR_SQL[(kind, cube.grain)]
            select = (f"SELECT {period}, {', '.join(dims)}, {GATEWAY_BATCH}, "
                      f"{', '.join(f'sum({m})' for m in measures)} FROM {source}{where} "
                      f"GROUP BY {numbers(1 + len(dims))}")
        updates = ", ".join(_sum_updates(cube.table, measures))
        name = cube.table.name
        out.append((name, f"INSERT INTO {name} ({', '.join((*keys, *measures))}) {select} "
                          f"ORDER BY {numbers(len(keys))} ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"))
    return out
