"""Point-in-time joins: each event with every view's latest value at or before its time.

An ``ASOF JOIN`` spends most of its time sorting the feature rows; snapshots are
written sorted by (join keys, event time) (:func:`hub.features.offline.validate`),
so nothing is sorted here. Each event's entity run is found by key (an array
lookup for dense integer keys, else a hash lookup), the latest value at or before
the event time by a vectorised binary search inside the run; several snapshots
are merged (the latest time wins; on a tie the later ingest), the TTL is one
comparison, and values are gathered with Arrow's ``take``, one slice of the events
per core. Events whose types need casts go through DuckDB (same casts, same
errors); a snapshot not stored sorted is joined by DuckDB's ``ASOF JOIN``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias, TypeVar

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from appliance.errors import InvalidInputError
from appliance.wire.features import FeatureSpec
from hub.features.offline import (
    ARROW_TYPES,
    EVENT_TIME,
    MICROS,
    ROUND_TRIP_TYPES,
    ROW,
    RUN,
    SQL_DTYPES,
    SQL_TYPES,
    TIMESTAMP_SQL,
    UTC_MICROS,
    ViewData,
    ViewSchema,
    _feature_source,
    _sql_list,
    connect,
    q,
)

DIRECT_SPAN = 4
"""An integer key whose range is under this many times its count is looked up in an array."""
PARALLEL_MIN_ROWS = 65_536
"""Fewer events than this per core are not worth a thread."""
T = TypeVar("T")
Int64s: TypeAlias = npt.NDArray[np.int64]
Bools: TypeAlias = npt.NDArray[np.bool_]


def point_in_time_join(
    events: pa.Table | Path,
    views: Sequence[ViewData],
    *,
    timestamp_column: str = "event_timestamp",
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Each event row with every view's latest value at or before its time, within TTL.

    ``events`` (an Arrow table or a Parquet file) holds the join keys of every
    view's entity, ``timestamp_column`` and any labels; all its columns come
    back unchanged, in the same order, followed by ``<view>__<feature>``
    columns. A value stamped exactly at the event time is used; a later one
    never; one older than the view's TTL reads as NULL.

    Why it is fast: an ``ASOF JOIN`` spends most of its time sorting the
    feature rows. Snapshots are stored sorted by (join keys, event time)
    (:func:`validate`), so here nothing is sorted: each event's entity run is
    found by key (an array or hash lookup) and its latest value by a vectorised
    binary search inside the run (:mod:`hub.features.asof`), in numpy, one slice
    of the events per core; values are gathered with Arrow's ``take``. Events
    whose types need casts go through DuckDB as before (same casts, same
    errors). A snapshot not stored sorted (ingested before sorting was
    introduced) is joined by DuckDB's ``ASOF JOIN``, with the same answers.
    """
    db = _LazyConnection(con)
    try:
        typed = _typed_events(db, events, views, timestamp_column)
        at = EventTimes.of(typed.column(typed.num_columns - 1))
        out = typed.remove_column(typed.num_columns - 1)
        for view in views:
            columns = sorted_join(typed, at, view)
            if columns is None:
                columns = _duckdb_join(db.get(), typed, view)
            for feature, column in zip(view.schema.features, columns, strict=True):
                out = out.append_column(f"{view.schema.name}__{feature.name}", column)
        return out
    finally:
        db.close()


class _LazyConnection:
    """The caller's DuckDB connection, else one of ours opened on first use (if any)."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None) -> None:
        self._given = con
        self._own: duckdb.DuckDBPyConnection | None = None

    def get(self) -> duckdb.DuckDBPyConnection:
        if self._given is not None:
            return self._given
        if self._own is None:
            self._own = connect()
        return self._own

    def close(self) -> None:
        if self._own is not None:
            self._own.close()


def _key_types(
    names: Sequence[str], views: Sequence[ViewData], timestamp_column: str
) -> dict[str, str]:
    """Each join key's SQL type (the first view naming it decides); refuses missing columns."""
    if timestamp_column not in names:
        raise InvalidInputError(f"events: no column {timestamp_column!r} (the event time)")
    types: dict[str, str] = {}
    for view in views:
        for key in view.schema.join_keys:
            if key.name not in names:
                raise InvalidInputError(
                    f"events: no column {key.name!r} (join key of view {view.schema.name})"
                )
            types.setdefault(key.name, SQL_TYPES[key.dtype])
    return types


def _typed_events(
    db: _LazyConnection,
    events: pa.Table | Path,
    views: Sequence[ViewData],
    timestamp_column: str,
) -> pa.Table:
    """The events in their order, join keys cast to the views' types, event time appended last.

    The appended column is the event time as ``TIMESTAMPTZ`` (UTC µs). Events
    whose columns DuckDB would hand back unchanged skip it; all others go
    through DuckDB's casts, so strings that parse, other integer widths and
    time zones behave as they always have, and a value that does not cast is a 400.
    """
    schema = pq.read_schema(events) if isinstance(events, Path) else events.schema
    types = _key_types(schema.names, views, timestamp_column)
    if not _needs_casts(schema, types, timestamp_column):
        table = pq.ParquetFile(events).read() if isinstance(events, Path) else events
        plain = table.cast(pa.schema([pa.field(f.name, f.type) for f in table.schema]))
        return plain.append_column(EVENT_TIME, table.column(timestamp_column).cast(UTC_MICROS))
    return _cast_events(db.get(), events, types, timestamp_column)


def _needs_casts(schema: pa.Schema, types: dict[str, str], timestamp_column: str) -> bool:
    """False when DuckDB's casts and its round trip would leave every column as it is."""
    names = schema.names
    return (
        len(set(names)) != len(names)
        or any(f.type not in ROUND_TRIP_TYPES for f in schema)
        or schema.field(timestamp_column).type not in MICROS
        or any(schema.field(k).type != ARROW_TYPES[SQL_DTYPES[t]] for k, t in types.items())
    )


def _cast_events(
    db: duckdb.DuckDBPyConnection,
    events: pa.Table | Path,
    types: dict[str, str],
    timestamp_column: str,
) -> pa.Table:
    if isinstance(events, Path):
        source = f"read_parquet({_sql_list([events])})"
    else:
        db.register("events_src", events)
        source = "events_src"
    replace = ", ".join(f"CAST({q(k)} AS {t}) AS {q(k)}" for k, t in types.items())
    sql = (
        f"SELECT * {f'REPLACE ({replace})' if replace else ''}, "
        f"CAST({q(timestamp_column)} AS {TIMESTAMP_SQL}) AS {EVENT_TIME} FROM {source}"
    )
    return _run(db, sql)


def _run(db: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    try:
        return db.sql(sql).to_arrow_table()
    except duckdb.ConversionException as exc:
        raise InvalidInputError(
            f"events: a join key or event time has the wrong type: {exc}"
        ) from exc


@dataclass(frozen=True)
class EventTimes:
    """The events' times as epoch microseconds; ``known`` is False where one is NULL."""

    micros: Int64s
    known: Bools

    @classmethod
    def of(cls, column: pa.ChunkedArray) -> EventTimes:
        micros = pc.fill_null(column.cast(pa.int64()), 0).to_numpy()
        return cls(micros.astype(np.int64, copy=False), column.is_valid().to_numpy())


@dataclass(frozen=True)
class _SortedSnapshot:
    """One snapshot file stored in :func:`storage_order`: one run of rows per entity.

    Rows ``starts[i]:ends[i]`` are the entity ``index.keys[i]``'s, oldest first,
    so an event's value is found by a lookup of its key and a binary search
    in its run: no sort of the snapshot's rows, which is what dominates an
    ``ASOF JOIN`` of millions of rows. ``starts`` and ``ends`` end with an empty
    run (0:0): run -1, for events whose entity has no rows here.
    """

    values: pa.Table
    """The feature columns."""
    times: Int64s
    starts: Int64s
    ends: Int64s
    index: _RunIndex

    @classmethod
    def read(cls, path: Path, schema: ViewSchema) -> _SortedSnapshot | None:
        """The file's rows, or None when they are not stored sorted (older snapshots).

        Keys and times are read first; the feature values are read while their
        order is checked. ``ParquetFile.read`` gives one chunk per column, so
        numpy sees the columns without a copy.
        """
        file = pq.ParquetFile(path)
        keyed = _contiguous(file.read(columns=[*schema.key_names, schema.timestamp_column]))
        stamp = keyed.column(schema.timestamp_column)
        keys = keyed.select(list(schema.key_names))
        if (
            keyed.num_rows == 0
            or stamp.type not in MICROS
            or any(c.null_count for c in keyed.columns)
        ):
            return None
        times = stamp.cast(pa.int64()).to_numpy().astype(np.int64, copy=False)
        with ThreadPoolExecutor(1) as reader:  # the values decode while the order is checked
            reading = reader.submit(file.read, columns=[f.name for f in schema.features])
            starts = _run_starts(keys, times)
            values = _contiguous(reading.result())
        if starts is None:
            return None
        ends = np.append(starts[1:], [keyed.num_rows, 0])
        index = _RunIndex.of(keys.take(starts))
        return cls(values, times, np.append(starts, 0), ends, index)

    def latest(self, runs: Int64s, at: EventTimes) -> Int64s:
        """Per event, the row of its entity's latest value at or before its time, or -1."""
        run = runs if at.known.all() else np.where(at.known, runs, -1)
        start = self.starts[run]
        row = _last_at_or_before(self.times, start, self.ends[run], at.micros)
        return np.where(row >= start, row, -1)


@dataclass(frozen=True)
class _RunIndex:
    """Finds the run of each event's key among a snapshot's runs.

    Entity ids are mostly integers in a narrow range: for those a plain array
    maps key to run (a gather, ~5x faster than hashing); other keys are looked
    up in a hash table, compound keys by a hash join.
    """

    keys: pa.Table
    """Each run's key, ascending."""
    direct: npt.NDArray[np.int32] | None
    """Run of key ``low + i`` at ``i``, -1 for none; only for one narrow integer key."""
    low: int
    high: int

    @classmethod
    def of(cls, keys: pa.Table) -> _RunIndex:
        column = keys.column(0)
        if keys.num_columns == 1 and pa.types.is_integer(column.type):
            values = column.to_numpy()
            low, high = int(values[0]), int(values[-1])
            if high - low < DIRECT_SPAN * len(values):
                direct = np.full(high - low + 1, -1, dtype=np.int32)
                direct[values - low] = np.arange(len(values), dtype=np.int32)
                return cls(keys, direct, low, high)
        return cls(keys, None, 0, 0)

    def runs(self, keys: pa.Table) -> Int64s:
        """Each event's run, -1 where its entity has no rows (or a NULL key)."""
        if self.direct is not None:
            return self._direct(keys.column(0), self.direct)
        if keys.num_columns == 1:
            found = pc.index_in(keys.column(0), value_set=self.keys.column(0).combine_chunks())
            index: Int64s = pc.fill_null(found, -1).to_numpy().astype(np.int64)
            return index
        return self._joined(keys)

    def _direct(self, column: pa.ChunkedArray, direct: npt.NDArray[np.int32]) -> Int64s:
        values = pc.fill_null(column, self.low).to_numpy()
        inside = (values >= self.low) & (values <= self.high) & column.is_valid().to_numpy()
        found = direct.take(np.where(inside, values - self.low, 0))
        return np.where(inside, found, -1).astype(np.int64)

    def _joined(self, keys: pa.Table) -> Int64s:
        numbered = keys.append_column(ROW, pa.array(np.arange(keys.num_rows, dtype=np.int64)))
        runs = self.keys.append_column(RUN, pa.array(np.arange(self.keys.num_rows, dtype=np.int64)))
        matched = numbered.join(runs, keys=keys.column_names, join_type="inner")
        out = np.full(keys.num_rows, -1, dtype=np.int64)
        out[matched.column(ROW).to_numpy()] = matched.column(RUN).to_numpy()
        return out


def _run_starts(keys: pa.Table, times: Int64s) -> Int64s | None:
    """The first row of every key's run; None unless rows are sorted by (keys, time).

    A few passes over the rows: runs start where any key changes; the runs'
    keys must ascend (so no key has two runs) and time may go back only where
    a run starts.
    """
    changed = np.zeros(len(times) - 1, dtype=np.bool_)
    for column in keys.columns:
        changed |= _changes(column)
    starts = np.flatnonzero(changed) + 1
    back = np.flatnonzero(times[1:] < times[:-1]) + 1
    firsts = np.concatenate(([0], starts)).astype(np.int64)
    if not (_ascending(keys.take(firsts)) and _subset(back, starts)):
        return None
    return firsts


def _subset(small: Int64s, large: Int64s) -> bool:
    """Whether every value of ``small`` is in ``large``; both ascend."""
    at = np.minimum(np.searchsorted(large, small), len(large) - 1)
    return len(small) == 0 or bool(np.all(large[at] == small))


def _changes(column: pa.ChunkedArray) -> Bools:
    """For each row but the first, whether its value differs from the row before."""
    if pa.types.is_integer(column.type):
        values = column.to_numpy()
        differs: Bools = values[1:] != values[:-1]
        return differs
    changed: Bools = pc.not_equal(column.slice(1), column.slice(0, len(column) - 1)).to_numpy()
    return changed


def _ascending(keys: pa.Table) -> bool:
    """Whether each row's key comes strictly after the one before, column by column."""
    n = keys.num_rows
    ahead = np.zeros(max(n - 1, 0), dtype=np.bool_)  # decided by an earlier column
    same = np.ones(max(n - 1, 0), dtype=np.bool_)  # equal in every column so far
    for column in keys.columns:
        before, after = column.slice(0, n - 1), column.slice(1)
        ahead |= same & pc.greater(after, before).to_numpy()
        same &= pc.equal(after, before).to_numpy()
    return bool(ahead.all())


def _last_at_or_before(times: Int64s, start: Int64s, end: Int64s, at: Int64s) -> Int64s:
    """Per probe, the last ``i`` in ``start:end`` with ``times[i] <= at``, else ``start - 1``.

    ``times`` ascends within each range. Binary lifting: one step per bit of
    the range's length, each a gather and a compare over all probes at once, so
    a million probes into runs of a few hundred rows take ~8 numpy passes. The
    long steps only a few long runs need are taken for those probes alone.
    """
    pos = start - 1
    last = end - 1
    length = end - start
    step = (1 << int(np.max(length, initial=0)).bit_length()) >> 1
    while step and np.count_nonzero(length >= step) * 4 < len(pos):
        few = np.flatnonzero(length >= step)
        moved = pos[few]
        _lift(times, moved, last[few], at[few], [step])
        pos[few] = moved
        step >>= 1
    _lift(times, pos, last, at, [1 << i for i in reversed(range(step.bit_length()))])
    return pos


def _lift(times: Int64s, pos: Int64s, last: Int64s, at: Int64s, steps: Sequence[int]) -> None:
    """Move each ``pos`` forward by each step in turn (never past ``last``) where the
    time there is still at or before ``at``; in place."""
    move = np.empty_like(pos)
    value = np.empty_like(at)
    ok = np.empty(len(pos), dtype=np.bool_)
    for step in steps:
        np.add(pos, step, out=move)
        np.minimum(move, last, out=move)  # the candidate, never past its run
        np.take(times, move, out=value, mode="clip")
        np.less_equal(value, at, out=ok)
        move -= pos
        move *= ok  # arithmetic, not a masked copy: a third of the time
        pos += move


def sorted_join(typed: pa.Table, at: EventTimes, view: ViewData) -> list[pa.ChunkedArray] | None:
    """The view's feature columns per event, or None when a snapshot is not stored sorted.

    The events are cut into one slice per core, searched and gathered in
    threads (numpy and Arrow let go of the GIL), and put back together in order.
    """
    keys = typed.select(list(view.schema.key_names))
    snapshots = _sorted_snapshots(view, keys.schema)
    if snapshots is None:
        return None
    values = [_stacked(snapshots, feature) for feature in view.schema.features]
    ttl_us = view.schema.ttl_seconds * 1_000_000

    def part(start: int, stop: int) -> list[pa.Array]:
        at_part = EventTimes(at.micros[start:stop], at.known[start:stop])
        rows, fresh = _rows_to_use(snapshots, keys.slice(start, stop - start), at_part, ttl_us)
        return [_gather(column, rows, fresh) for column in values]

    parts = _in_parallel(part, typed.num_rows)
    return [
        pa.chunked_array([p[i] for p in parts], type=column.type) for i, column in enumerate(values)
    ]


def _sorted_snapshots(view: ViewData, keys: pa.Schema) -> list[_SortedSnapshot] | None:
    """Every snapshot of the view, or None if one is not stored sorted or keyed otherwise."""
    snapshots: list[_SortedSnapshot] = []
    for path in view.files:
        snapshot = _SortedSnapshot.read(path, view.schema)
        if snapshot is None or snapshot.index.keys.schema != keys:
            return None
        snapshots.append(snapshot)
    return snapshots


def _in_parallel(work: Callable[[int, int], T], rows: int) -> list[T]:
    """``work(start, stop)`` over consecutive slices of ``rows``, one slice per core, in order."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = max(1, min(cores or 1, rows // PARALLEL_MIN_ROWS))
    if count == 1:
        return [work(0, rows)]
    bounds = [rows * i // count for i in range(count + 1)]
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, bounds[:-1], bounds[1:]))


def _rows_to_use(
    snapshots: Sequence[_SortedSnapshot], keys: pa.Table, at: EventTimes, ttl_us: int
) -> tuple[Int64s, Bools]:
    """Per event, the row to read (counting through all snapshots) and whether it is fresh.

    The latest value at or before the event wins; of two at the same time, the
    later snapshot's (the later ingest). An event with no fresh value gets row 0.
    """
    best = np.full(keys.num_rows, -1, dtype=np.int64)
    best_time = np.zeros(keys.num_rows, dtype=np.int64)
    offset = 0
    for snapshot in snapshots:
        row = snapshot.latest(snapshot.index.runs(keys), at)
        stamp = snapshot.times.take(row, mode="clip")
        newer = (row >= 0) & ((best < 0) | (stamp >= best_time))
        best = np.where(newer, row + offset, best)
        best_time = np.where(newer, stamp, best_time)
        offset += len(snapshot.times)
    fresh = (best >= 0) & (best_time >= at.micros - ttl_us)
    return np.maximum(best, 0), fresh


def _gather(values: pa.Array, rows: Int64s, fresh: Bools) -> pa.Array:
    """``values[rows]``, NULL where not ``fresh``; a take whose indices have no NULLs and
    a select after it take half the time of a take with NULL indices."""
    if len(values) == 0:
        return pa.nulls(len(rows), values.type)
    taken = values.take(pa.array(rows))
    return pc.if_else(pa.array(fresh), taken, pa.scalar(None, values.type))


def _stacked(snapshots: Sequence[_SortedSnapshot], feature: FeatureSpec) -> pa.Array:
    """One feature's values through all snapshots, in the row numbering of :func:`_rows_to_use`.

    One contiguous array (a ``take`` from a chunked one concatenates it first,
    every time); with a single snapshot, its column as read.
    """
    arrow_type = ARROW_TYPES[feature.dtype]
    chunks = [
        chunk
        for snapshot in snapshots
        for chunk in snapshot.values.column(feature.name).cast(arrow_type).chunks
    ]
    if len(chunks) == 1:
        return chunks[0]
    return pa.concat_arrays(chunks) if chunks else pa.array([], arrow_type)


def _contiguous(table: pa.Table) -> pa.Table:
    """``table`` with one chunk per column, copying only columns that have several."""
    if all(column.num_chunks == 1 for column in table.columns):
        return table
    return table.combine_chunks()


def _duckdb_join(
    db: duckdb.DuckDBPyConnection, typed: pa.Table, view: ViewData
) -> list[pa.ChunkedArray]:
    """The view's feature columns per event by DuckDB's ``ASOF JOIN`` (it sorts the rows)."""
    s = view.schema
    probe = typed.select(list(s.key_names))
    probe = probe.append_column(EVENT_TIME, typed.column(typed.num_columns - 1))
    probe = probe.append_column(ROW, pa.array(np.arange(typed.num_rows, dtype=np.int64)))
    db.register("pit_events", probe)
    ts = f"f.{q(s.timestamp_column)}"
    on = " AND ".join(f"ev.{q(k)} = f.{q(k)}" for k in s.key_names)
    fresh = f"{ts} >= ev.{EVENT_TIME} - INTERVAL {int(s.ttl_seconds)} SECOND"
    outputs = ", ".join(f"CASE WHEN {fresh} THEN f.{q(x.name)} END" for x in s.features)
    sql = (
        f"WITH f AS ({_feature_source(view)}) SELECT {outputs} FROM pit_events AS ev "
        f"ASOF LEFT JOIN f ON {on} AND ev.{EVENT_TIME} >= {ts} ORDER BY ev.{ROW}"
    )
    try:
        joined = _run(db, sql)
    finally:
        db.unregister("pit_events")
    return [joined.column(i) for i in range(joined.num_columns)]
