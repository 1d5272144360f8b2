"""Ad-hoc scans over exported Parquet with DuckDB.

For questions the rollups were not built for, or for ledgers exported from several
gateways: ``tollway report rankings --parquet 'exports/*.parquet'`` aggregates the files in
DuckDB (columnar, multi-threaded, out of core) and hands the grouped rows to the same
:func:`tollway.analytics.rankings.build_report` the rollup path uses.  Files in the event
import/export format are read; optional columns that are absent count as empty or zero.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from tollway.analytics.attribution import SOURCE_COLUMN
from tollway.analytics.rankings import GroupedRow, RankingQuery, previous_range
from tollway.ledger.rollups import MEASURES, day_of

_DEFAULTS = {"provider": "''", "app": "''", "key_id": "''", "requests": "1", "errors": "0",
             "reasoning_tokens": "0", "cached_tokens": "0", "cache_write_tokens": "0", "cost_nanousd": "0"}


def scan_grouped(pattern: str, query: RankingQuery) -> list[GroupedRow]:
    """Grouped rows for ``query`` from Parquet files matching ``pattern`` (a path or glob)."""
    import duckdb

    query.validate()
    con = duckdb.connect(":memory:")
    try:
        # The relation API takes the path as data, never spliced into SQL text.
        relation = con.read_parquet(pattern, union_by_name=True)
        relation.create_view("usage")
        present = {str(c) for c in relation.columns}
        missing = {"created_at", "model", "prompt_tokens", "completion_tokens"} - present

        def col(name: str) -> str:
            if name in present:
                sql_type = "VARCHAR" if name in ("provider", "app", "key_id") else "BIGINT"
                return f"COALESCE(CAST({name} AS {sql_type}), {_DEFAULTS.get(name, '0')})"
            return _DEFAULTS.get(name, "0")

        if missing:
            raise ValueError(f"{pattern}: not in the export format; missing {', '.join(sorted(missing))}")
        period = "CAST(MIN(created_at) AS DATE)" if query.period == "total" else \
            f"CAST(date_trunc('{query.period}', created_at) AS DATE)"
        dim = col(SOURCE_COLUMN[query.by]) if SOURCE_COLUMN[query.by] != "model" else "model"
        users = query.by == "user-country"
        key_expr = col("key_id") if users else "''"
        exprs = {m: col(m) for m in MEASURES}
        if "errors" not in present and "status" in present:
            # Ledger exports mark failed generations by status (and requests = 0).
            exprs["errors"] = "CASE WHEN status = 'error' THEN 1 ELSE 0 END"
        sums = ", ".join(f"SUM({exprs[m]})::HUGEINT" for m in MEASURES)
        group = "2, 3" if query.period == "total" else "1, 2, 3"
        sql = f"SELECT {period}, {dim}, {key_expr}, {sums} FROM usage WHERE created_at >= ? AND created_at < ? " \
              f"GROUP BY {group}"
        rows = []
        before = previous_range(query)
        # The previous period whole (for rank change), then the range clipped exactly.
        for part in ([before] if before is not None else []) + [query]:
            low = datetime.combine(part.start or date.min, time())
            high = datetime.combine(part.end + timedelta(days=1), time()) if part.end else datetime.max
            rows.extend(con.execute(sql, [low, high]).fetchall())
    finally:
        con.close()
    out: list[GroupedRow] = []
    for row in rows:
        key_id = str(row[2]) if users else (str(row[1]) if query.by == "key" else "")
        out.append((day_of(row[0]), str(row[1]), key_id, [int(v or 0) for v in row[3:]]))
    if query.period == "total" and out:
        first: date = query.start or min(r[0] for r in out)
        out = [(first, raw, k, m) for _, raw, k, m in out]
    return out
