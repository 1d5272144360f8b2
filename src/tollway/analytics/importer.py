"""``tollway usage import``: load usage from CSV, JSON Lines or Parquet into the rollups.

Two row shapes are accepted:

* events: ``created_at, model, prompt_tokens, completion_tokens`` and optionally
  ``reasoning_tokens, cached_tokens, cache_write_tokens, requests, cost_usd`` (or the exact
  ``cost_nanousd``), ``provider, app, session_id, key_id``;
* aggregates: the same with ``period_start`` instead of ``created_at`` and a ``period``
  (``day`` or ``week``; weeks start on Monday) given by the caller.

Imports go into the rollups (tagged with their import batch), not into ``generations``: the
ledger records what this gateway served, and an aggregate row is not a generation.  The
file's SHA-256 is recorded in the same transaction, so importing the same content twice
is a no-op.  Token counts must be whole numbers; costs are parsed as decimals, never floats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError

from tollway.analytics.origins import find_model
from tollway.catalog.index import Catalog
from tollway.ledger.rollups import MEASURES, RollupDelta, import_batches
from tollway.ledger.schema import utcnow
from tollway.metering import PriceTable, Usage, usd_to_nano

TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens",
                 "cache_write_tokens")
_CHUNK_ROWS = 65_536


class UsageImportError(ValueError):
    """A file that cannot be imported; the message names the row and the fix."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int
    batch_id: int | None  # None when the content had been imported before
    skipped: bool
    total_tokens: int
    cost_nanousd: int


def file_format(path: Path, fmt: str | None) -> str:
    """``csv``, ``jsonl`` or ``parquet``, from ``fmt`` or the file name."""
    name = (fmt or path.suffix.lstrip(".")).lower()
    aliases = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl", "json": "jsonl",
               "parquet": "parquet", "pq": "parquet"}
    if name not in aliases:
        raise UsageImportError(f"{path}: unknown format {name!r}; name the file .csv, .jsonl or .parquet "
                               "or pass --format")
    return aliases[name]


def iter_rows(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    """The file's rows as dicts, streamed in chunks (Parquet and CSV via pyarrow)."""
    if fmt == "jsonl":
        with path.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield orjson.loads(line)
                    except orjson.JSONDecodeError as exc:
                        raise UsageImportError(f"{path}:{n}: not JSON ({exc})") from None
        return
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=_CHUNK_ROWS):
            yield from batch.to_pylist()
        return
    import pyarrow as pa
    import pyarrow.csv as pacsv

    # Costs stay text so "0.1" is parsed as a Decimal, not a binary float.
    convert = pacsv.ConvertOptions(column_types={"cost_usd": pa.string(), "session_id": pa.string(),
                                                 "key_id": pa.string(), "app": pa.string()},
                                   strings_can_be_null=True)
    with pacsv.open_csv(path, convert_options=convert) as reader:
        for batch in reader:
            yield from batch.to_pylist()


def _int(row: Mapping[str, Any], name: str, where: str, default: int = 0) -> int:
    value = row.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise UsageImportError(f"{where}: {name} must be a whole number, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        raise UsageImportError(f"{where}: {name} must be a whole number of tokens, got {value!r}")
    if number < 0:
        raise UsageImportError(f"{where}: {name} is negative ({number})")
    return number


def _timestamp(value: Any, where: str, name: str) -> datetime:
    """Naive UTC; aware values are converted, naive ones are taken as UTC already."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise UsageImportError(f"{where}: {name} {value!r} is not an ISO 8601 date or time") from None
    else:
        raise UsageImportError(f"{where}: {name} is missing")
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def _cost(row: Mapping[str, Any], where: str, usage: Usage, price: PriceTable | None) -> int:
    if row.get("cost_nanousd") not in (None, ""):
        return _int(row, "cost_nanousd", where)
    raw = row.get("cost_usd")
    if raw is not None and raw != "":
        try:
            # str() of a float is its shortest repr, i.e. the digits that were written.
            return usd_to_nano(Decimal(str(raw)))
        except InvalidOperation:
            raise UsageImportError(f"{where}: cost_usd {raw!r} is not a number") from None
    return price.cost_nano(usage) if price is not None else 0


class _Prices:
    """Catalog list prices for rows without a cost (first endpoint of the model)."""

    def __init__(self, catalog: Catalog | None) -> None:
        self._catalog = catalog
        self._cache: dict[str, PriceTable | None] = {}

    def get(self, model_id: str) -> PriceTable | None:
        if model_id not in self._cache:
            found = find_model(self._catalog.models, model_id) if self._catalog else None
            self._cache[model_id] = (self._catalog.price_table(found.id, found.endpoints[0])
                                     if self._catalog and found and found.endpoints else None)
        return self._cache[model_id]


def fold_rows(rows: Iterator[dict[str, Any]], delta: RollupDelta, *, batch_id: int, period: str | None,
              source: str, catalog: Catalog | None) -> tuple[int, int, int]:
    """Validate rows and add them to ``delta``; returns (rows, total tokens, cost)."""
    prices = _Prices(catalog)
    n = tokens = cost_total = 0
    for n, row in enumerate(rows, 1):
        where = f"{source} row {n}"
        model = row.get("model")
        if not isinstance(model, str) or not model:
            raise UsageImportError(f"{where}: model is missing")
        if period is None:
            if "created_at" not in row:
                raise UsageImportError(f"{where}: no created_at; aggregate rows (period_start) need "
                                       "--period day|week")
            at = _timestamp(row.get("created_at"), where, "created_at")
        else:
            at = _timestamp(row.get("period_start"), where, "period_start")
            if at.time() != time() or (period == "week" and at.weekday() != 0):
                raise UsageImportError(f"{where}: period_start {at} does not start a {period} "
                                       "(weeks run Monday-Sunday UTC)")
        counts = {c: _int(row, c, where) for c in TOKEN_COLUMNS}
        usage = Usage(counts["prompt_tokens"], counts["completion_tokens"], counts["cached_tokens"],
                      counts["cache_write_tokens"], counts["reasoning_tokens"])
        cost = _cost(row, where, usage, prices.get(model))
        requests = _int(row, "requests", where, default=1 if period is None else 0)
        measures = dict(counts, requests=requests, errors=0, cost_nanousd=cost)
        delta.add(at=at, model=model, provider=str(row.get("provider") or ""),
                  app=str(row.get("app") or ""), key_id=str(row.get("key_id") or ""), batch_id=batch_id,
                  measures=[measures[m] for m in MEASURES],
                  session_id=str(row["session_id"]) if row.get("session_id") else None,
                  per_request=period is None)
        tokens += usage.prompt_tokens + usage.completion_tokens
        cost_total += cost
    return n, tokens, cost_total


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def import_usage(engine: Engine, path: Path, *, fmt: str | None = None, period: str | None = None,
                 catalog: Catalog | None = None) -> ImportResult:
    """Import one file in one transaction; a file whose content was imported before is skipped."""
    if period not in (None, "day", "week"):
        raise UsageImportError(f"--period {period!r}: use day or week")
    kind = file_format(path, fmt)
    digest = sha256_file(path)
    try:
        with engine.begin() as conn:
            if _already(conn, digest):
                return ImportResult(0, None, True, 0, 0)
            batch_id = int(conn.execute(import_batches.insert().values(
                sha256=digest, source=str(path), kind=period or "events", rows=0,
                imported_at=utcnow()).returning(import_batches.c.id)).scalar_one())
            delta = RollupDelta()
            rows, tokens, cost = fold_rows(iter_rows(path, kind), delta, batch_id=batch_id, period=period,
                                           source=str(path), catalog=catalog)
            delta.apply(conn)
            conn.execute(import_batches.update().where(import_batches.c.id == batch_id).values(rows=rows))
    except IntegrityError:
        # A concurrent import of the same content committed first.
        return ImportResult(0, None, True, 0, 0)
    return ImportResult(rows, batch_id, False, tokens, cost)


def _already(conn: Connection, digest: str) -> bool:
    found = conn.execute(select(import_batches.c.id).where(import_batches.c.sha256 == digest)).first()
    return found is not None
