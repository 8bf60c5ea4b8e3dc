"""The offline store: schema checks, Parquet snapshots and point-in-time joins on DuckDB.

Nothing here touches the hub's database. The service decides which snapshot
files make up a view version and hands them in; these functions validate
tables, write files atomically and run the joins. Every DuckDB connection runs
in UTC so that timestamps without an offset mean UTC everywhere.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from appliance.errors import InvalidInputError, StorageError, UnprocessableInputError
from appliance.fsutil import fsync_dir, sha256_file
from appliance.wire.features import FeatureSpec, KeyColumn

log = logging.getLogger(__name__)

SQL_TYPES = {"int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN", "string": "VARCHAR"}
TIMESTAMP_SQL = "TIMESTAMPTZ"
MAX_REPORTED_PROBLEMS = 100
ROW = "__row"
RUN = "__run"
EVENT_TIME = "__event_time"
ARROW_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
}
SQL_DTYPES = {sql: dtype for dtype, sql in SQL_TYPES.items()}
UTC_MICROS = pa.timestamp("us", tz="UTC")
MICROS = frozenset({pa.timestamp("us"), UTC_MICROS})
"""Event-time types the sorted join reads as they are: µs, UTC or without a zone (UTC)."""
ROUND_TRIP_TYPES = frozenset(
    {
        *(pa.int8(), pa.int16(), pa.int32(), pa.int64()),
        *(pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()),
        *(pa.float32(), pa.float64(), pa.bool_(), pa.string(), pa.date32()),
        *MICROS,
    }
)
"""Arrow types that come back from a DuckDB query exactly as they went in."""
PARQUET_MAGIC = b"PAR1"
CSV_OPTIONS = pa_csv.ConvertOptions(strings_can_be_null=True)
"""An empty CSV field is a null (a missing value), whatever the column's type."""
SNAPSHOT_COMPRESSION = "lz4"
"""Snapshots are written once and read by every training set: LZ4 decompresses about
twice as fast as zstd (the Parquet read was half of a join's time) for files some
10-40 % larger. Files written with zstd before read as they are."""


@dataclass(frozen=True)
class ViewSchema:
    """What the data of one view version must look like."""

    name: str
    version: int
    join_keys: tuple[KeyColumn, ...]
    features: tuple[FeatureSpec, ...]
    timestamp_column: str
    ttl_seconds: int
    zone: str

    @classmethod
    def from_definition(cls, definition: dict[str, Any], version: int) -> ViewSchema:
        return cls(
            name=definition["name"],
            version=version,
            join_keys=tuple(KeyColumn(**k) for k in definition["join_keys"]),
            features=tuple(FeatureSpec(**f) for f in definition["features"]),
            timestamp_column=definition["timestamp_column"],
            ttl_seconds=int(definition["ttl_seconds"]),
            zone=definition["zone"],
        )

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.join_keys)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.key_names, self.timestamp_column, *(f.name for f in self.features))


@dataclass(frozen=True)
class RowProblem:
    row: int | None
    """1-based data row (a CSV's header is not a row); None for a whole-column problem."""
    column: str
    reason: str

    def __str__(self) -> str:
        where = f"row {self.row}" if self.row is not None else "all rows"
        return f"{where}, column {self.column}: {self.reason}"


class IngestRefusedError(UnprocessableInputError):
    """The data does not fit the view version; nothing was written."""

    def __init__(self, view: str, problems: list[RowProblem], total: int) -> None:
        shown = "; ".join(str(p) for p in problems[:20])
        more = f" (and {total - 20} more)" if total > 20 else ""
        super().__init__(
            f"ingest into {view} refused, {total} problem(s), nothing written: {shown}{more}",
            hint="fix the rows named and ingest the whole file again",
        )
        self.problems = problems
        self.total = total


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def q(name: str) -> str:
    """A quoted SQL identifier (names are checked already; quoting keeps case)."""
    return '"' + name.replace('"', '""') + '"'


def _sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


# -- reading what users hand in ----------------------------------------------------------


def read_table(data: pa.Table | Any | Path | bytes, *, name: str = "") -> pa.Table:
    """An Arrow table from a pandas frame, Arrow table, CSV/Parquet file or its bytes.

    Parquet is recognised by its magic bytes, anything else is read as CSV with a
    header line. Unreadable input is a 400 naming the input.
    """
    if isinstance(data, pa.Table):
        return data
    what = name or (str(data) if isinstance(data, Path) else "upload")
    try:
        if isinstance(data, Path):
            with data.open("rb") as handle:
                magic = handle.read(4)
            return (
                pq.read_table(data)
                if magic == PARQUET_MAGIC
                else pa_csv.read_csv(data, convert_options=CSV_OPTIONS)
            )
        if isinstance(data, bytes):
            if data[:4] == PARQUET_MAGIC:
                return pq.read_table(io.BytesIO(data))
            return pa_csv.read_csv(io.BytesIO(data), convert_options=CSV_OPTIONS)
        import pandas as pd  # lazy: pandas takes 0.3 s; only a DataFrame given as input needs it

        if isinstance(data, pd.DataFrame):
            return pa.Table.from_pandas(data, preserve_index=False)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"file: {what} does not exist") from exc
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise InvalidInputError(f"file: {what} is neither valid CSV nor Parquet: {exc}") from exc
    raise InvalidInputError(f"data: cannot ingest a {type(data).__name__}")


# -- validation --------------------------------------------------------------------------


def storage_order(schema: ViewSchema) -> tuple[str, ...]:
    """The columns a snapshot is sorted by when stored: join keys, then event time."""
    return (*schema.key_names, schema.timestamp_column)


def _problem_queries(schema: ViewSchema) -> list[str]:
    """SQL selecting (row, column, reason) for every bad cell of table ``src``."""
    parts: list[str] = []
    ts = q(schema.timestamp_column)
    required = [*schema.key_names, schema.timestamp_column]
    typed: list[tuple[str, str]] = [(k.name, SQL_TYPES[k.dtype]) for k in schema.join_keys]
    typed.append((schema.timestamp_column, TIMESTAMP_SQL))
    typed += [(f.name, SQL_TYPES[f.dtype]) for f in schema.features]
    for column in required:
        parts.append(
            f"SELECT {ROW}, '{column}', 'missing value' FROM src WHERE {q(column)} IS NULL"
        )
    for column, sql_type in typed:
        c = q(column)
        shown = f"left(CAST({c} AS VARCHAR), 40)"
        label = "timestamp" if sql_type == TIMESTAMP_SQL else sql_type.lower()
        parts.append(
            f"SELECT {ROW}, '{column}', 'not a valid {label}: ' || {shown} FROM src "
            f"WHERE {c} IS NOT NULL AND TRY_CAST({c} AS {sql_type}) IS NULL"
        )
        if sql_type == "BIGINT":
            parts.append(
                f"SELECT {ROW}, '{column}', 'not a whole number: ' || {shown} FROM src "
                f"WHERE TRY_CAST({c} AS BIGINT) IS NOT NULL "
                f"AND TRY_CAST({c} AS DOUBLE) <> TRY_CAST({c} AS BIGINT)"
            )
        if sql_type == "BOOLEAN":
            parts.append(
                f"SELECT {ROW}, '{column}', 'not true/false: ' || {shown} FROM src "
                f"WHERE TRY_CAST({c} AS DOUBLE) IS NOT NULL "
                f"AND TRY_CAST({c} AS DOUBLE) NOT IN (0, 1)"
            )
    keys = ", ".join(f"TRY_CAST({q(k.name)} AS {SQL_TYPES[k.dtype]})" for k in schema.join_keys)
    parts.append(
        f"SELECT {ROW}, '{schema.timestamp_column}', "
        f"'duplicate of row ' || first || ' (same key and timestamp)' FROM ("
        f"SELECT {ROW}, min({ROW}) OVER (PARTITION BY {keys}, TRY_CAST({ts} AS {TIMESTAMP_SQL})) "
        f"AS first FROM src) WHERE {ROW} <> first"
    )
    return parts


def validate(table: pa.Table, schema: ViewSchema) -> tuple[pa.Table, list[str]]:
    """The table cast to the view's schema, and the columns ignored; or IngestRefusedError.

    Checks every row: join keys and event time present, every value of its
    declared type (whole numbers for int64, 0/1 or true/false for bool), and no
    two rows with the same key and event time. Feature values may be null.

    The clean table is sorted by (join keys, event time), the order it is stored
    in: every entity's rows form one run, oldest first, which is what lets
    :func:`hub.features.joins.point_in_time_join` search a snapshot without sorting it.
    """
    missing = [c for c in schema.columns if c not in table.column_names]
    if missing:
        problems = [RowProblem(None, c, "column missing") for c in missing]
        raise IngestRefusedError(schema.name, problems, len(problems))
    if table.num_rows == 0:
        raise IngestRefusedError(schema.name, [RowProblem(None, "*", "no rows")], 1)
    ignored = [c for c in table.column_names if c not in schema.columns]
    source = table.select(list(schema.columns)).append_column(
        ROW, pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64))
    )
    con = connect()
    try:
        con.register("src", source)
        union = " UNION ALL ".join(_problem_queries(schema))
        found = con.execute(
            f"SELECT *, count(*) OVER () FROM ({union}) AS p(row, col, reason) "
            f"ORDER BY row, col LIMIT {MAX_REPORTED_PROBLEMS}"
        ).fetchall()
        if found:
            problems = [RowProblem(int(r[0]), str(r[1]), str(r[2])) for r in found]
            raise IngestRefusedError(schema.name, problems, int(found[0][3]))
        casts = [
            f"CAST({q(k.name)} AS {SQL_TYPES[k.dtype]}) AS {q(k.name)}" for k in schema.join_keys
        ]
        casts.append(
            f"CAST({q(schema.timestamp_column)} AS {TIMESTAMP_SQL}) AS {q(schema.timestamp_column)}"
        )
        casts += [
            f"CAST({q(f.name)} AS {SQL_TYPES[f.dtype]}) AS {q(f.name)}" for f in schema.features
        ]
        order = ", ".join(q(c) for c in storage_order(schema))
        clean = con.sql(f"SELECT {', '.join(casts)} FROM src ORDER BY {order}").to_arrow_table()
    finally:
        con.close()
    return clean, ignored


# -- snapshot files ----------------------------------------------------------------------


@dataclass(frozen=True)
class StagedSnapshot:
    """A validated snapshot written under a temporary name, not yet part of the store."""

    temp_path: Path
    final_path: Path
    sha256: str
    rows: int

    def publish(self) -> None:
        """Give the file its final name (atomic); an identical file there already is kept."""
        try:
            os.replace(self.temp_path, self.final_path)
            fsync_dir(self.final_path.parent)
        except OSError as exc:
            log.error("cannot store snapshot %s: %s", self.final_path, exc)
            raise StorageError(
                f"the hub could not store the snapshot: {exc.strerror or 'disk error'}",
                hint="free space in the hub's data directory and ingest again; nothing was kept",
            ) from exc

    def discard(self) -> None:
        self.temp_path.unlink(missing_ok=True)


def stage_snapshot(table: pa.Table, directory: Path) -> StagedSnapshot:
    """Write ``table`` as Parquet to a temporary file in ``directory`` and hash it.

    ``table`` comes from :func:`validate`, sorted in :func:`storage_order`; the
    file keeps that order, so every join reads it without sorting.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".ingest.", suffix=".tmp")
        os.close(fd)
        temp = Path(name)
        try:
            pq.write_table(table, temp, compression=SNAPSHOT_COMPRESSION)
            with temp.open("rb") as handle:
                os.fsync(handle.fileno())
            digest, _length = sha256_file(temp)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.error("cannot write a snapshot under %s: %s", directory, exc)
        raise StorageError(
            f"the hub could not write the snapshot: {exc.strerror or 'disk error'}",
            hint="free space in the hub's data directory and ingest again; nothing was kept",
        ) from exc
    return StagedSnapshot(temp, directory / f"{digest}.parquet", digest, table.num_rows)


# -- point-in-time joins -----------------------------------------------------------------


@dataclass(frozen=True)
class ViewData:
    """One view version and the snapshot files that hold its rows, oldest first."""

    schema: ViewSchema
    files: tuple[Path, ...]


def _feature_source(view: ViewData) -> str:
    """SQL for a view's rows; when snapshots overlap, a later ingest wins a tie."""
    s = view.schema
    cols = ", ".join(q(c) for c in s.columns)
    files = _sql_list(view.files)
    if len(view.files) == 1:
        return f"SELECT {cols} FROM read_parquet({files})"
    keys = ", ".join(q(k) for k in s.key_names)
    return (
        f"SELECT {cols} FROM read_parquet({files}, filename = true) QUALIFY row_number() OVER "
        f"(PARTITION BY {keys}, {q(s.timestamp_column)} "
        f"ORDER BY list_position({files}, filename) DESC) = 1"
    )


def latest_per_entity(view: ViewData, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """The newest row of every entity (ties: the later ingest), event time as epoch µs."""
    s = view.schema
    own = con is None
    db = con or connect()
    try:
        keys = ", ".join(q(k) for k in s.key_names)
        feats = ", ".join(q(f.name) for f in s.features)
        files = _sql_list(view.files)
        sql = (
            f"SELECT {keys}, {feats}, epoch_us({q(s.timestamp_column)}) AS __event_us "
            f"FROM read_parquet({files}, filename = true) QUALIFY row_number() OVER "
            f"(PARTITION BY {keys} ORDER BY {q(s.timestamp_column)} DESC, "
            f"list_position({files}, filename) DESC) = 1"
        )
        return db.sql(sql).to_arrow_table()
    finally:
        if own:
            db.close()


def label_events(
    view: ViewData, label: str, con: duckdb.DuckDBPyConnection | None = None
) -> pa.Table:
    """A label view's rows as training events: join keys, event time and ``label``.

    Rows with a null label are left out (nothing to learn from); the order is by
    event time, then key, so a job reads the same events in the same order.
    """
    s = view.schema
    if label not in {f.name for f in s.features}:
        raise InvalidInputError(
            f"label: view {s.name!r} has no feature {label!r}",
            hint=f"its features are {', '.join(f.name for f in s.features)}",
        )
    own = con is None
    db = con or connect()
    try:
        keys = ", ".join(q(k) for k in s.key_names)
        sql = (
            f"SELECT {keys}, {q(s.timestamp_column)}, {q(label)} FROM ({_feature_source(view)}) "
            f"WHERE {q(label)} IS NOT NULL ORDER BY {q(s.timestamp_column)}, {keys}"
        )
        return db.sql(sql).to_arrow_table()
    finally:
        if own:
            db.close()
