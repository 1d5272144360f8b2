"""``tollway usage export``: write the ledger (or the hourly rollup) out for other tools.

Rows stream from the database in chunks straight into a Parquet, CSV or JSON Lines
writer, so exporting a ledger larger than memory works.  The event export uses the
import format's column names (``created_at, model, prompt_tokens, ...``, ``requests``, the
exact ``cost_nanousd``), so an export can be imported elsewhere or scanned with DuckDB
(:mod:`tollway.analytics.scan`).  This is a batch job, never on a request path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, case, select

from tollway.ledger import schema
from tollway.ledger.rollups import MEASURES, usage_hourly

FORMATS = ("parquet", "csv", "jsonl")
TABLES = ("generations", "hourly")
_CHUNK = 50_000

_EVENT_COLUMNS = ("id", "created_at", "model", "provider", "app", "app_title", "session_id", "key_id",
                  "status", "requests", "prompt_tokens", "completion_tokens", "reasoning_tokens",
                  "cached_tokens", "cache_write_tokens", "cost_nanousd")
_INT_COLUMNS = frozenset(("requests", *MEASURES, "batch_id"))


def _arrow_schema(columns: tuple[str, ...], time_column: str) -> Any:
    import pyarrow as pa

    fields = []
    for name in columns:
        if name == time_column:
            fields.append(pa.field(name, pa.timestamp("us")))
        elif name in _INT_COLUMNS:
            fields.append(pa.field(name, pa.int64()))
        else:
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields)


def _statement(table: str) -> tuple[Any, tuple[str, ...], str]:
    if table == "generations":
        g = schema.generations
        cols: list[Any] = [g.c[c] for c in _EVENT_COLUMNS if c in g.c]
        # An errored generation is not a served request; keep import semantics.
        requests = case((g.c.status == "error", 0), else_=1).label("requests")
        cols.insert(_EVENT_COLUMNS.index("requests"), requests)
        return select(*cols).order_by(g.c.created_at, g.c.id), _EVENT_COLUMNS, "created_at"
    h = usage_hourly
    names = ("hour", "model", "provider", "app", "key_id", "batch_id", *MEASURES)
    return select(*[h.c[c] for c in names]).order_by(*[h.c[c] for c in names[:6]]), names, "hour"


def export_ledger(engine: Engine, out: Path, *, fmt: str = "parquet", table: str = "generations") -> int:
    """Write ``table`` to ``out`` in ``fmt``; returns the number of rows written."""
    import pyarrow as pa

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; use one of {', '.join(TABLES)}")
    stmt, columns, time_column = _statement(table)
    arrow_schema = _arrow_schema(columns, time_column)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    writer: Any = None
    with engine.connect() as conn, out.open("wb") as fh:
        result = conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(stmt)
        try:
            if fmt == "parquet":
                import pyarrow.parquet as pq

                writer = pq.ParquetWriter(fh, arrow_schema)
            elif fmt == "csv":
                import pyarrow.csv as pacsv

                writer = pacsv.CSVWriter(fh, arrow_schema)
            for chunk in result.partitions(_CHUNK):
                rows = [dict(zip(columns, r, strict=True)) for r in chunk]
                written += len(rows)
                if fmt == "jsonl":
                    fh.write(b"".join(orjson.dumps(r, option=orjson.OPT_NAIVE_UTC | orjson.OPT_APPEND_NEWLINE)
                                      for r in rows))
                else:
                    writer.write_table(pa.Table.from_pylist(rows, schema=arrow_schema))
        finally:
            if writer is not None:
                writer.close()
    return written
