"""Set-based ingest: generations, key spend and every rollup from one staged batch.

The live path (:meth:`LedgerWriter._insert` + :func:`~tollway.ledger.rollups.apply_rollups`)
aggregates each batch in Python.  For large batches it is several times cheaper to load the
rows once into a per-connection TEMP staging table (``executemany`` on SQLite, binary
``COPY`` on PostgreSQL) and let the database do the rest with one ``INSERT ... SELECT`` per
table: the generations, the per-key spend and each rollup's ``GROUP BY ... ON CONFLICT DO
UPDATE`` (most of them summed from the batch's cells of the hourly cube rather than from
every row).  The tables come out exactly as the live path leaves them (the tests compare both).

Derived keys are computed in SQL from ``created_at``; weeks run Monday-Sunday UTC:

* SQLite stores timestamps as ``'YYYY-MM-DD HH:MM:SS.ffffff'`` text, so an hour is a prefix
  plus ``':00:00.000000'``, a day or month a prefix, and a week ``date(day, 'weekday 0',
  '-6 days')`` (the Sunday on or after the day, minus six days: its Monday).
* PostgreSQL uses ``date_trunc`` (whose ``'week'`` starts on Monday).

The tokens-per-request bucket is computed in Python while staging, where it costs one
integer call, so both databases share :func:`~tollway.ledger.rollups.token_bucket`.
That per-record Python work is :func:`prepare`, which ``LedgerWriter.write_bulk`` runs on
a helper thread for the next batch while the database works on the current one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any

import orjson
from sqlalchemy import BigInteger, Boolean, Connection, DateTime, Integer, String, Text

from tollway.ledger.definitions import DIMENSIONS, LEDGER_MEASURES, PERF_STAGE_COLUMNS, perf_buckets
from tollway.ledger.detail import (
    DETAIL_CELLS,
    DetailDelta,
    detail_statements,
    ensure_detail_stage,
    session_delta,
)
from tollway.ledger.records import COLUMNS, GenerationRecord
from tollway.ledger.rollups import (
    CUBES,
    GATEWAY_BATCH,
    MEASURES,
    ROLLUP_INPUT_SQL,
    RollupDelta,
    enters_rollups,
    token_bucket,
    usage_daily_request_hist,
    usage_sessions,
)
from tollway.ledger.schema import generations

STAGE = "tollway_stage"
_GET = attrgetter(*COLUMNS)
_CREATED_AT = COLUMNS.index("created_at")
_TOKENS = (COLUMNS.index("prompt_tokens"), COLUMNS.index("completion_tokens"))
_JSON_FROM = COLUMNS.index("attempts")
_BOOLS = COLUMNS.index("streamed")
_PERF = tuple(COLUMNS.index(n) for n in ("status", "latency_ms", "ttft_ms", "completion_tokens"))
assert COLUMNS[_BOOLS:_BOOLS + 3] == ("streamed", "cancelled", "estimated")
assert COLUMNS[_JSON_FROM:] == ("attempts", "extra")  # staged() relies on the JSON columns being last

# Each measure and dimension as an expression over one staged row (tollway.ledger.definitions).
_MEASURE_SQL = {m.name: m.sql for m in LEDGER_MEASURES}
assert tuple(_MEASURE_SQL) == MEASURES
_DIM_SQL = {name: DIMENSIONS[name].sql for name in ("model", "provider", "app", "key_id")}
_GRAIN_SQL = {
    "sqlite": {
        "hour": "substr(created_at, 1, 13) || ':00:00.000000'",
        "day": "substr(created_at, 1, 10)",
        "week": "date(substr(created_at, 1, 10), 'weekday 0', '-6 days')",
        "month": "substr(created_at, 1, 7) || '-01'",
    },
    "postgresql": {
        "hour": "date_trunc('hour', created_at)",
        "day": "created_at::date",
        "week": "date_trunc('week', created_at)::date",
        "month": "date_trunc('month', created_at)::date",
    },
}


# The batch is first summed into its cells of the finest cube, hour x model x provider x
# app x key (CELLS: one row per cell, a tenth of the batch or less for a gateway's traffic,
# whose tasks stay on one key, app and model).  usage_hourly takes CELLS as they are;
# the key, app and day x model x provider (DM) sums come from CELLS, and the coarser model
# cubes (a longer period, or fewer of DM's dimensions) from DM, so only CELLS, the sessions
# and the histogram scan the whole batch.
_FROM_HOUR_SQL = {"sqlite": "substr(hour, 1, 10)", "postgresql": "hour::date"}
_FROM_DAY_SQL = {
    "sqlite": {"day": "day", "week": "date(day, 'weekday 0', '-6 days')", "month": "substr(day, 1, 7) || '-01'"},
    "postgresql": {"day": "day", "week": "date_trunc('week', day)::date",
                   "month": "date_trunc('month', day)::date"},
}
# A cell's hour as its day, week or month.
_CELL_PERIOD_SQL = {
    "sqlite": {"day": _FROM_HOUR_SQL["sqlite"], "week": "date(substr(hour, 1, 10), 'weekday 0', '-6 days')",
               "month": "substr(hour, 1, 7) || '-01'"},
    "postgresql": {"day": _FROM_HOUR_SQL["postgresql"], "week": "date_trunc('week', hour)::date",
                   "month": "date_trunc('month', hour)::date"},
}
CELLS = "tollway_stage_cells"
DM = "tollway_stage_dm"
_CELL_DIMS = ("model", "provider", "app", "key_id")
# A bigger page cache for the batch (restored after): index pages of a large ledger then
# stay in memory across the batch's inserts (measured: the generations insert halves).
_SQLITE_BULK_CACHE_KIB = 262_144
_PG_BULK_WORK_MEM = "256MB"


def staged(record: GenerationRecord, sqlite: bool) -> tuple[Any, ...]:
    """One staging row: the generation's columns in ``COLUMNS`` order, then its size bucket.

    ``attrgetter`` and tuple slicing keep this to about a microsecond per record, since it
    is the only per-row Python work the bulk path does.
    """
    v = _GET(record)
    attempts, extra = v[_JSON_FROM], v[_JSON_FROM + 1]
    if sqlite:
        # SQLAlchemy's DateTime storage format (timespec keeps ".000000" when microsecond is 0);
        # booleans as the 0/1 they are stored as (sqlite3 binds an int several times faster).
        return (*v[:_CREATED_AT], v[_CREATED_AT].isoformat(" ", "microseconds"), *v[_CREATED_AT + 1:_BOOLS],
                int(v[_BOOLS]), int(v[_BOOLS + 1]), int(v[_BOOLS + 2]), *v[_BOOLS + 3:_JSON_FROM],
                orjson.dumps(attempts).decode() if attempts else None,
                orjson.dumps(extra).decode() if extra else None,
                token_bucket(v[_TOKENS[0]] + v[_TOKENS[1]]), *perf_buckets(*map(v.__getitem__, _PERF)))
    return (*v[:_JSON_FROM],
            orjson.dumps(attempts).decode() if attempts else None,
            orjson.dumps(extra).decode() if extra else None,
            token_bucket(v[_TOKENS[0]] + v[_TOKENS[1]]), *perf_buckets(*map(v.__getitem__, _PERF)))


@dataclass(frozen=True, slots=True)
class Prepared:
    """A batch's staging rows, built before its transaction (by :func:`prepare`, on any thread)."""

    columns: tuple[str, ...]  # the staging columns the rows hold, in order
    rows: list[tuple[Any, ...]]
    # The batch's tokens-per-request histogram and task sums (:func:`per_record_sums`).
    sums: RollupDelta | None = None
    # The batch's task cube (:func:`~tollway.ledger.detail.session_delta`).
    tasks: DetailDelta | None = None


_STAGE_COLUMNS = (*COLUMNS, "bucket", *PERF_STAGE_COLUMNS)
_PG_TYPE_NAMES = {Boolean: "bool", BigInteger: "int8", Integer: "int4", DateTime: "timestamp", Text: "text",
                  String: "varchar"}
# Each staging column's PostgreSQL type, for binary COPY (BigInteger before Integer: a subclass).
_PG_STAGE_TYPES = {
    **{c.name: next(name for kind, name in _PG_TYPE_NAMES.items() if isinstance(c.type, kind))
       for c in generations.columns},
    "bucket": "int2",
    **{c: "int2" for c in PERF_STAGE_COLUMNS},
}


def prepare(records: Sequence[GenerationRecord], sqlite: bool, *, with_sums: bool = True) -> Prepared:
    """All the per-record Python work of a batch, so it can overlap the previous batch's SQL.

    ``with_sums`` adds :func:`per_record_sums` (worth it only on a thread of its own: the
    live writer leaves those sums to the database).

    On SQLite, columns that are NULL in every row of the batch are left out (the staging
    table's default is NULL): sqlite3 binds ``None`` through its adapter lookup, several
    times slower than an int or a string, and a gateway's batches have a few such columns
    (``error``, ``attempts``, ``extra``, upstream ids...).
    """
    rows = [staged(r, sqlite) for r in records]
    sums = per_record_sums(records) if with_sums else None
    perf = session_delta(records) if with_sums else None
    if not sqlite or not rows:
        return Prepared(_STAGE_COLUMNS, rows, sums, perf)
    keep = [i for i in range(len(_STAGE_COLUMNS))
            if list(map(itemgetter(i), rows)).count(None) != len(rows)]
    if len(keep) == len(_STAGE_COLUMNS):
        return Prepared(_STAGE_COLUMNS, rows, sums, perf)
    pick = itemgetter(*keep)
    if len(keep) == 1:  # itemgetter of one index returns the value, not a 1-tuple
        return Prepared((_STAGE_COLUMNS[keep[0]],), [(pick(row),) for row in rows], sums, perf)
    return Prepared(tuple(_STAGE_COLUMNS[i] for i in keep), list(map(pick, rows)), sums, perf)


def per_record_sums(records: Sequence[GenerationRecord]) -> RollupDelta:
    """The batch's tokens-per-request histogram and task (session) sums, summed in Python.

    Unlike the other rollups these two cannot start from the batch's hourly cells (a size
    bucket and a task are per record), and in SQL they were a fifth of PostgreSQL's work
    per record; summed here, on the thread that prepares the next batch while the database
    writes, they leave the database a few thousand upserts per batch.  The rules are
    :class:`RollupDelta`'s (errors stay out of the histogram; a task's key is that of its
    earliest record), so the tables match the SQL path's and the live path's.
    """
    delta = RollupDelta()
    hist, sessions = delta.hist, delta.sessions
    batch = GATEWAY_BATCH
    measures = [m.py for m in LEDGER_MEASURES]
    for r in records:
        if not enters_rollups(r):
            continue
        at = r.created_at
        if r.status != "error":
            hkey = (at.date(), r.model, token_bucket(r.prompt_tokens + r.completion_tokens), batch)
            hist[hkey] = hist.get(hkey, 0) + 1
        if r.session_id:
            skey = (r.session_id, batch)
            sess = sessions.get(skey)
            if sess is None:
                sessions[skey] = [r.key_id or "", at, at, *(m(r) for m in measures)]
                continue
            if at < sess[1]:
                sess[0], sess[1] = r.key_id or "", at
            if at > sess[2]:
                sess[2] = at
            for i, m in enumerate(measures, 3):
                sess[i] += m(r)
    return delta


def ensure_stage(conn: Connection) -> None:
    """Create this connection's TEMP staging tables if needed, and empty them."""
    measures = ", ".join(f"{m} bigint" for m in MEASURES)
    perf = ", ".join(f"{c} smallint" for c in PERF_STAGE_COLUMNS)
    ensure_detail_stage(conn)
    if conn.dialect.name == "postgresql":
        # ON COMMIT DELETE ROWS empties them at commit; a rolled-back batch leaves nothing either.
        conn.exec_driver_sql(
            f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (LIKE generations, bucket smallint, {perf}, ord bigserial) "
            "ON COMMIT DELETE ROWS")
        # Text sorts bytewise (COLLATE "C"): see rollup_statements.
        text = 'text COLLATE "C"'
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {CELLS} (hour timestamp, "
                             f"{', '.join(f'{d} {text}' for d in _CELL_DIMS)}, {measures}) ON COMMIT DELETE ROWS")
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {DM} (day date, model {text}, provider {text}, "
                             f"{measures}) ON COMMIT DELETE ROWS")
        return
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ({', '.join(_STAGE_COLUMNS)})")
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {CELLS} (hour, {', '.join(_CELL_DIMS)}, {measures})")
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {DM} (day, model, provider, {measures})")
    for table in (STAGE, CELLS, DM):
        conn.exec_driver_sql(f"DELETE FROM temp.{table}")


def stage(conn: Connection, records: Sequence[GenerationRecord], prepared: Prepared | None = None) -> None:
    """Load ``records`` into the staging table, in order (``ord``/rowid keep that order).

    ``prepared`` is their :func:`prepare` if the caller built it already.
    """
    ensure_stage(conn)
    sqlite = conn.dialect.name == "sqlite"
    if prepared is None:
        prepared = prepare(records, sqlite, with_sums=False)
    names = ", ".join(prepared.columns)
    if not sqlite:
        # Binary COPY with the column types given: a third of text COPY's client CPU (measured
        # 0.9 against 3.1 us a row), and the server skips parsing numbers and timestamps.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {STAGE} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([_PG_STAGE_TYPES[c] for c in prepared.columns])
            for row in prepared.rows:
                copy.write_row(row)
        cursor.close()
        return
    marks = ", ".join("?" * len(prepared.columns))
    conn.exec_driver_sql(f"INSERT INTO temp.{STAGE} ({names}) VALUES ({marks})", prepared.rows)


def drop_known(conn: Connection) -> None:
    """Remove staged rows whose id is already in the ledger, or repeats an earlier staged row.

    Only needed when a batch is retried after an ambiguous commit or replayed from the
    journal (the plain insert then fails on the primary key); it makes the retry count
    each generation once (the live writer retries every such batch this way).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"DELETE FROM {STAGE} s USING generations g WHERE s.id = g.id")
        conn.exec_driver_sql(f"DELETE FROM {STAGE} a USING {STAGE} b WHERE a.id = b.id AND a.ord > b.ord")
        return
    conn.exec_driver_sql(f"DELETE FROM temp.{STAGE} WHERE EXISTS "
                         f"(SELECT 1 FROM main.generations g WHERE g.id = {STAGE}.id)")
    conn.exec_driver_sql(f"DELETE FROM temp.{STAGE} WHERE rowid NOT IN "
                         f"(SELECT min(rowid) FROM temp.{STAGE} GROUP BY id)")


def apply_staged(conn: Connection, *, rollups: bool = True, sums: RollupDelta | None = None,
                 tasks: DetailDelta | None = None) -> None:
    """Insert the staged rows into ``generations``, roll them up, add their cost to key spend.

    The order matters when several transactions write at once (replicas, or
    :meth:`LedgerWriter.write_bulk`'s parallel batches on PostgreSQL): the work that
    touches no shared row (the generations, the batch's own TEMP sums) comes first, and
    the upserts into rows other batches also touch come last, each statement in key
    order, so a transaction holds those locks only briefly and every writer takes them in
    one global order (table by table, key by key): no two can deadlock.  ``sums`` is the
    batch's :func:`per_record_sums`, upserted in place of the SQL for those two tables;
    ``tasks`` its task cube (:func:`~tollway.ledger.detail.session_delta`), which has no SQL.
    """
    cols = ", ".join(COLUMNS)
    conn.exec_driver_sql(f"INSERT INTO generations ({cols}) SELECT {cols} FROM {STAGE}")
    if rollups:
        detail = detail_statements(conn.dialect.name, STAGE)
        assert detail[0][0] == DETAIL_CELLS
        conn.exec_driver_sql(detail[0][1])  # the batch's finest hourly cells: the rollups' re-sum them
        for table, sql in rollup_statements(conn.dialect.name):
            if sums is None or table not in _PER_RECORD_TABLES:
                conn.exec_driver_sql(sql)
            elif table == _PER_RECORD_TABLES[0]:
                sums.apply(conn)  # the histogram, then the tasks: the SQL's order
        for _, sql in detail[1:]:
            conn.exec_driver_sql(sql)
        if tasks is not None:
            tasks.apply(conn)
    spend = f"SELECT key_id, sum(cost_nanousd) AS cost FROM {STAGE} WHERE key_id IS NOT NULL GROUP BY key_id"
    if conn.dialect.name == "postgresql":
        # An UPDATE ... FROM locks rows in its join's order; lock them in key order first.
        conn.exec_driver_sql(f"SELECT 1 FROM keys WHERE id IN (SELECT key_id FROM {STAGE}) ORDER BY id FOR UPDATE")
    conn.exec_driver_sql(f"UPDATE keys SET usage_nanousd = usage_nanousd + s.cost FROM ({spend}) s "
                         "WHERE keys.id = s.key_id")


_PER_RECORD_TABLES = (usage_daily_request_hist.name, usage_sessions.name)


def rollup_statements(dialect: str) -> list[tuple[str, str]]:
    """The set-based upserts that fold the staged rows into every rollup table, as
    (table written, SQL).

    In the order :func:`apply_staged` needs: the batch's TEMP sums, then the tables whose
    rows few batches share (hours, sessions, the histogram), then the small daily, weekly
    and monthly tables whose rows every batch of the day touches.
    """
    grains = _GRAIN_SQL["postgresql" if dialect == "postgresql" else "sqlite"]
    pg = dialect == "postgresql"
    # Text keys group and sort bytewise: the order Python sorts the live path's upserts in
    # (so concurrent writers lock rows in one order), and on PostgreSQL several times cheaper
    # than a locale collation, even C.UTF-8.  SQLite's default collation is already bytewise.
    def dim(name: str) -> str:
        return f'{_DIM_SQL[name]} COLLATE "C"' if pg else _DIM_SQL[name]

    # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT (parsing ambiguity).
    where = "" if pg else " WHERE true"
    sums = ", ".join(f"sum({_MEASURE_SQL[m]})" for m in MEASURES)
    resums = ", ".join(f"sum({m})" for m in MEASURES)
    kind = "postgresql" if pg else "sqlite"
    cell_group = ", ".join(str(i + 1) for i in range(1 + len(_CELL_DIMS)))
    # The analytics cubes' hourly cells (DETAIL_CELLS: every dimension, the same rows and sums
    # of the same definitions) re-summed: a smaller input than the staged batch.
    out = [(CELLS, f"INSERT INTO {CELLS} SELECT hour, {', '.join(_CELL_DIMS)}, {resums} "
                   f"FROM {DETAIL_CELLS} GROUP BY {cell_group}"),
           (DM, f"INSERT INTO {DM} SELECT {_FROM_HOUR_SQL[kind]}, model, provider, {resums} FROM {CELLS} "
                "GROUP BY 1, 2, 3")]
    from_day = _FROM_DAY_SQL[kind]
    fine: list[tuple[str, str]] = []
    coarse: list[tuple[str, str]] = []
    for cube in CUBES:
        names = [cube.grain, *cube.dims]
        if cube.grain == "hour":  # CELLS is this cube's cells already
            assert cube.dims == _CELL_DIMS
            exprs, source, measures, grouped = ["hour", *cube.dims], CELLS, ", ".join(MEASURES), False
        elif set(cube.dims) <= {"model", "provider"}:  # a day x model x provider sum covers it
            exprs, source, measures, grouped = [from_day[cube.grain], *cube.dims], DM, resums, True
        else:
            assert set(cube.dims) <= set(_CELL_DIMS)
            exprs, source, measures, grouped = [_CELL_PERIOD_SQL[kind][cube.grain], *cube.dims], CELLS, resums, True
        group = ", ".join(str(i + 1) for i in range(len(exprs)))
        updates = ", ".join(f"{m} = {cube.table.name}.{m} + excluded.{m}" for m in MEASURES)
        (fine if cube.grain == "hour" else coarse).append((cube.table.name,
            f"INSERT INTO {cube.table.name} ({', '.join(names)}, batch_id, {', '.join(MEASURES)}) "
            f"SELECT {', '.join(exprs)}, {GATEWAY_BATCH}, {measures} FROM {source}{where} "
            f"{f'GROUP BY {group} ' if grouped else ''}ORDER BY {group} "
            f"ON CONFLICT ({', '.join(names)}, batch_id) DO UPDATE SET {updates}"))
    fine.append((usage_daily_request_hist.name,
        "INSERT INTO usage_daily_request_hist (day, model, bucket, batch_id, requests) "
        f"SELECT {grains['day']}, {dim('model')}, bucket, {GATEWAY_BATCH}, count(*) FROM {STAGE} "
        "WHERE status <> 'error' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3 "
        "ON CONFLICT (day, model, bucket, batch_id) DO UPDATE SET "
        "requests = usage_daily_request_hist.requests + excluded.requests"))
    # A task's key is that of its earliest record (ties: the first staged), in every batch
    # and across batches (the upsert keeps the key with the earlier first_seen), so the
    # result does not depend on batch boundaries or on the order parallel batches commit.
    # (SQLite: created_at text is fixed-width, then a zero-padded rowid; min() of the
    # concatenation picks that row, and the prefix is cut off.)
    first_key = ("(array_agg(coalesce(key_id, '') ORDER BY created_at, ord))[1]" if pg else
                 "substr(min(created_at || printf('%012d', rowid) || coalesce(key_id, '')), 39)")
    least, greatest = ("least", "greatest") if pg else ("min", "max")
    sess_updates = ", ".join([
        *(f"{m} = usage_sessions.{m} + excluded.{m}" for m in MEASURES),
        "key_id = CASE WHEN excluded.first_seen < usage_sessions.first_seen THEN excluded.key_id "
        "ELSE usage_sessions.key_id END",
        f"first_seen = {least}(usage_sessions.first_seen, excluded.first_seen)",
        f"last_seen = {greatest}(usage_sessions.last_seen, excluded.last_seen)"])
    sid = 'session_id COLLATE "C"' if pg else "session_id"
    select = (f"SELECT {sid} AS session_id, {GATEWAY_BATCH} AS batch_id, {first_key} AS key_id, "
              f"min(created_at) AS first_seen, max(created_at) AS last_seen, {sums} "
              f"FROM {STAGE} WHERE session_id IS NOT NULL AND session_id <> '' AND {ROLLUP_INPUT_SQL} "
              "GROUP BY 1")
    cols = f"session_id, batch_id, key_id, first_seen, last_seen, {', '.join(MEASURES)}"
    fine.append((usage_sessions.name, f"INSERT INTO usage_sessions ({cols}) {select} ORDER BY session_id "
                                      f"ON CONFLICT (session_id, batch_id) DO UPDATE SET {sess_updates}"))
    return [*out, *fine, *coarse]


def ingest_batch(conn: Connection, records: Sequence[GenerationRecord], *, rollups: bool = True,
                 dedupe: bool = False, prepared: Prepared | None = None,
                 on_staged: Callable[[], None] | None = None) -> Sequence[GenerationRecord]:
    """Write one batch set-based inside the caller's transaction; returns the records written.

    With ``dedupe`` false a generation id already in the ledger raises ``IntegrityError``
    (and the transaction must be rolled back); retry with ``dedupe`` true to skip those.
    ``prepared`` (bulk loads: :meth:`LedgerWriter.write_bulk`) is :func:`prepare` of the
    records; ``on_staged`` is called once they are staged (the rest of the work releases
    the GIL: :meth:`LedgerWriter.write_bulk` prepares the next batch then).  With
    ``prepared`` PostgreSQL also acknowledges the commit before its WAL is flushed (a
    crash can then lose the last batches, never half of one, and re-running the import
    writes exactly those again).
    """
    sqlite = conn.dialect.name == "sqlite"
    if sqlite:
        cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        temp_cache = conn.exec_driver_sql("PRAGMA temp.cache_size").scalar()
        conn.exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_BULK_CACHE_KIB}")
        # The TEMP staging tables have a page cache of their own (2 MB): a batch would spill to a file.
        conn.exec_driver_sql(f"PRAGMA temp.cache_size = -{_SQLITE_BULK_CACHE_KIB}")
    else:
        # The planner has no statistics on the staging table and the default 4 MB spills a
        # 50k-row batch's aggregates and sorts to disk; this transaction only.
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{_PG_BULK_WORK_MEM}'")
        if prepared is not None:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
    try:
        stage(conn, records, prepared)
        if on_staged is not None:
            on_staged()
        if dedupe:
            drop_known(conn)
            kept = {row[0] for row in conn.exec_driver_sql(f"SELECT id FROM {STAGE}")}
            written = []
            for r in records:
                if r.id in kept:
                    kept.discard(r.id)  # a repeated id is written once, as its first occurrence
                    written.append(r)
            records = written
        # A deduplicated batch is no longer the one its sums were taken over: SQL sums it (and
        # Python its histograms).
        reuse = prepared if not dedupe else None
        tasks = None
        if rollups:
            tasks = reuse.tasks if reuse is not None and reuse.tasks is not None else session_delta(records)
        apply_staged(conn, rollups=rollups, sums=reuse.sums if reuse is not None else None, tasks=tasks)
    finally:
        if sqlite:
            conn.exec_driver_sql(f"PRAGMA cache_size = {int(cache or -2000)}")
            conn.exec_driver_sql(f"PRAGMA temp.cache_size = {int(temp_cache or -2000)}")
    return records
