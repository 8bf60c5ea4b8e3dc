"""The point-in-time join against a plain reference on random data.

Snapshots are written the way an ingest writes them (``validate`` then
``stage_snapshot``, so sorted by join keys and event time) and the join must
agree, value for value, with a brute-force reading of the rules: the latest
value at or before the event time (exactly at it counts), a later ingest wins a
tie, older than the TTL reads NULL. The same data through DuckDB's ``ASOF JOIN``
(the path for snapshots not stored sorted) must agree too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from appliance.errors import InvalidInputError
from appliance.wire.features import FeatureSpec, KeyColumn
from hub.features import joins
from hub.features.joins import point_in_time_join
from hub.features.offline import ViewData, ViewSchema, stage_snapshot, validate

T0_US = int(datetime(2025, 6, 1, tzinfo=UTC).timestamp() * 1_000_000)
TTL_S = 10
FEATURES = (
    FeatureSpec(name="x", dtype="float64"),
    FeatureSpec(name="s", dtype="string"),
    FeatureSpec(name="n", dtype="int64"),
    FeatureSpec(name="b", dtype="bool"),
)
KEY_KINDS: dict[str, tuple[KeyColumn, ...]] = {
    "int": (KeyColumn(name="id", dtype="int64"),),
    "string": (KeyColumn(name="id", dtype="string"),),
    "compound": (KeyColumn(name="id", dtype="int64"), KeyColumn(name="part", dtype="string")),
    "wide": (KeyColumn(name="wide_id", dtype="int64"),),
}
STRINGS = ("a", "b", "k10", "k9", "é", "")
WIDE = (-(2**63), -7, 0, 2**40, 2**62, 2**63 - 1, 12)
"""Integer keys too far apart for an array lookup (a hash lookup instead), extremes included."""
Row = dict[str, Any]


@dataclass(frozen=True)
class Case:
    schema: ViewSchema
    snapshots: list[list[Row]]
    """Each snapshot's rows (key values, ``ts`` in seconds, features), oldest ingest first."""


def key_value(rng: np.random.Generator, key: KeyColumn, spread: int) -> int | str:
    if key.name == "wide_id":
        return WIDE[int(rng.integers(0, spread))]
    if key.dtype == "int64":
        return int(rng.integers(0, spread))
    return STRINGS[int(rng.integers(0, min(spread, len(STRINGS))))]


def snapshot_rows(rng: np.random.Generator, schema: ViewSchema, count: int) -> list[Row]:
    """Random rows, unique per (key, time) as an ingest requires, with NULL features."""
    rows: dict[tuple[Any, ...], Row] = {}
    for _ in range(count):
        row: Row = {k.name: key_value(rng, k, 5) for k in schema.join_keys}
        row["ts"] = int(rng.integers(0, 40))
        value = float(rng.normal())
        row.update(x=value, s=f"v{value:.3f}", n=int(rng.integers(-5, 5)), b=value > 0)
        for feature in FEATURES:
            if rng.random() < 0.15:
                row[feature.name] = None
        rows[tuple(row[k] for k in (*schema.key_names, "ts"))] = row
    return list(rows.values())


def make_case(seed: int, kind: str) -> Case:
    rng = np.random.default_rng(seed)
    schema = ViewSchema(
        name=f"v_{kind}",
        version=1,
        join_keys=KEY_KINDS[kind],
        features=FEATURES,
        timestamp_column="ts",
        ttl_seconds=TTL_S,
        zone="ae-dxb",
    )
    snapshots = [snapshot_rows(rng, schema, int(rng.integers(1, 60))) for _ in range(3)]
    snapshots.append(snapshots[0][: len(snapshots[0]) // 2])  # overlaps the first exactly
    return Case(schema, snapshots)


def stamps(seconds: Sequence[int | None]) -> pa.Array:
    micros = [None if s is None else T0_US + s * 1_000_000 for s in seconds]
    return pa.array(micros, pa.timestamp("us", tz="UTC"))


def snapshot_table(schema: ViewSchema, rows: list[Row]) -> pa.Table:
    columns: dict[str, Any] = {
        k.name: pa.array(
            [r[k.name] for r in rows], pa.int64() if k.dtype == "int64" else pa.string()
        )
        for k in schema.join_keys
    }
    columns["ts"] = stamps([r["ts"] for r in rows])
    for feature, arrow_type in zip(
        FEATURES, (pa.float64(), pa.string(), pa.int64(), pa.bool_()), strict=True
    ):
        columns[feature.name] = pa.array([r[feature.name] for r in rows], arrow_type)
    return pa.table(columns)


def store_sorted(case: Case, root: Path) -> ViewData:
    """The snapshots as an ingest stores them (validated, sorted, content-named)."""
    files: list[Path] = []
    for rows in case.snapshots:
        clean, _ = validate(snapshot_table(case.schema, rows), case.schema)
        staged = stage_snapshot(clean, root / case.schema.name)
        staged.publish()
        files.append(staged.final_path)
    return ViewData(case.schema, tuple(files))


def store_unsorted(case: Case, root: Path) -> ViewData:
    """The snapshots as written before ingest sorted them: rows in arrival order."""
    rng = np.random.default_rng(99)
    files: list[Path] = []
    for i, rows in enumerate(case.snapshots):
        clean, _ = validate(snapshot_table(case.schema, rows), case.schema)
        path = root / f"{case.schema.name}-unsorted-{i}.parquet"
        pq.write_table(clean.take(rng.permutation(clean.num_rows)), path)
        files.append(path)
    return ViewData(case.schema, tuple(files))


def event_rows(rng: np.random.Generator, schema: ViewSchema, count: int) -> list[Row]:
    """Events over unknown entities too (extreme integers), NULL keys and times, and times
    before any value."""
    events: list[Row] = []
    for _ in range(count):
        event: Row = {k.name: key_value(rng, k, 7) for k in schema.join_keys}
        if rng.random() < 0.05:
            event[schema.key_names[-1]] = None
        elif schema.join_keys[0].dtype == "int64" and rng.random() < 0.05:
            event[schema.key_names[0]] = (-(2**63), -1, 2**63 - 1)[int(rng.integers(0, 3))]
        event["ts"] = None if rng.random() < 0.03 else int(rng.integers(-3, 55))
        events.append(event)
    return events


def events_table(schema: ViewSchema, events: list[Row], encoding: str) -> pa.Table:
    """``plain``: the views' own types; ``cast``: int keys as text, times as ns in Dubai's zone."""
    columns: dict[str, Any] = {}
    for key in schema.join_keys:
        values = [e[key.name] for e in events]
        if key.dtype == "string":
            columns[key.name] = pa.array(values, pa.string())
        elif encoding == "plain":
            columns[key.name] = pa.array(values, pa.int64())
        else:
            columns[key.name] = pa.array([None if v is None else str(v) for v in values])
    ts = stamps([e["ts"] for e in events])
    if encoding == "cast":
        ts = ts.cast(pa.timestamp("ns", tz="UTC")).cast(pa.timestamp("ns", tz="Asia/Dubai"))
    columns["event_time"] = ts
    columns["label"] = pa.array(np.arange(len(events), dtype=np.int64))
    return pa.table(columns)


def reference(case: Case, events: list[Row]) -> dict[str, list[Any]]:
    """The rules read literally, one event and one row at a time."""
    keys = case.schema.key_names
    out: dict[str, list[Any]] = {f"{case.schema.name}__{f.name}": [] for f in FEATURES}
    for event in events:
        best: tuple[tuple[int, int], Row] | None = None
        wanted = tuple(event[k] for k in keys)
        if event["ts"] is not None and None not in wanted:
            for ingest, rows in enumerate(case.snapshots):
                for row in rows:
                    order = (row["ts"], ingest)
                    usable = tuple(row[k] for k in keys) == wanted and row["ts"] <= event["ts"]
                    if usable and (best is None or order >= best[0]):
                        best = (order, row)
        fresh = best is not None and event["ts"] - best[0][0] <= TTL_S
        for feature in FEATURES:
            value = best[1][feature.name] if fresh and best is not None else None
            out[f"{case.schema.name}__{feature.name}"].append(value)
    return out


def no_duckdb_join(*_args: object) -> list[pa.ChunkedArray]:
    raise AssertionError("sorted snapshots must not need DuckDB's ASOF JOIN")


def join(events: pa.Table, views: list[ViewData]) -> pa.Table:
    return point_in_time_join(events, views, timestamp_column="event_time")


@pytest.mark.parametrize("encoding", ["plain", "cast"])
@pytest.mark.parametrize("kind", sorted(KEY_KINDS))
@pytest.mark.parametrize("seed", range(3))
def test_sorted_join_agrees_with_the_reference_and_with_duckdb(
    seed: int, kind: str, encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = make_case(seed, kind)
    events = event_rows(np.random.default_rng(seed + 1000), case.schema, 300)
    table = events_table(case.schema, events, encoding)
    view = store_sorted(case, tmp_path)
    expected = reference(case, events)

    monkeypatch.setattr(joins, "PARALLEL_MIN_ROWS", 7)  # several slices, as with 1M events
    with monkeypatch.context() as patched:
        patched.setattr(joins, "_duckdb_join", no_duckdb_join)
        ours = join(table, [view])
    assert ours.column_names[: table.num_columns] == table.column_names
    assert ours.column("label").to_pylist() == list(range(len(events)))
    assert {name: ours.column(name).to_pylist() for name in expected} == expected

    calls: list[str] = []

    def counted(db: Any, typed: pa.Table, view: ViewData) -> list[pa.ChunkedArray]:
        calls.append(view.schema.name)
        return duckdb_join(db, typed, view)

    duckdb_join = joins._duckdb_join
    monkeypatch.setattr(joins, "_duckdb_join", counted)
    by_duckdb = join(table, [store_unsorted(case, tmp_path)])
    assert calls == [case.schema.name]
    assert by_duckdb.schema == ours.schema
    assert by_duckdb.equals(ours)


def test_views_sorted_and_not_join_together_in_the_events_order(tmp_path: Path) -> None:
    cases = [make_case(7, "int"), make_case(8, "compound")]
    events = event_rows(np.random.default_rng(5), cases[1].schema, 200)
    table = events_table(cases[1].schema, events, "plain")
    mixed = join(table, [store_sorted(cases[0], tmp_path), store_unsorted(cases[1], tmp_path)])
    for case in cases:
        expected = reference(case, events)
        assert {name: mixed.column(name).to_pylist() for name in expected} == expected
    added = [f"{c.schema.name}__{f.name}" for c in cases for f in FEATURES]
    assert mixed.column_names == [*table.column_names, *added]


def test_events_from_a_parquet_file_give_the_same_answer(tmp_path: Path) -> None:
    case = make_case(3, "string")
    events = event_rows(np.random.default_rng(3), case.schema, 100)
    table = events_table(case.schema, events, "plain")
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    view = store_sorted(case, tmp_path)
    assert point_in_time_join(path, [view], timestamp_column="event_time").equals(
        join(table, [view])
    )


@pytest.mark.parametrize(
    ("ids", "parts", "seconds", "runs"),
    [
        ([1, 1, 2, 2], ["a", "b", "a", "a"], [5, 1, 1, 2], [0, 1, 2]),
        ([1, 1, 2], ["a", "a", "a"], [2, 1, 3], None),  # time goes back within a run
        ([2, 1], ["a", "b"], [1, 2], None),  # a later part cannot make up for a smaller id
        ([1, 2, 1], ["a", "a", "a"], [1, 2, 3], None),  # entity 1 in two runs
    ],
)
def test_only_rows_in_storage_order_are_searched_in_place(
    ids: list[int], parts: list[str], seconds: list[int], runs: list[int] | None
) -> None:
    keys = pa.table({"id": pa.array(ids, pa.int64()), "part": pa.array(parts)})
    starts = joins._run_starts(keys, np.array(seconds, dtype=np.int64))
    assert (None if starts is None else starts.tolist()) == runs


ROUND_TRIP_EVENTS = pa.table(
    {
        "id": pa.array([1, None, 3], pa.int64()),
        "ts": stamps([0, 1, None]),
        "naive": pa.array([5, None, 7], pa.timestamp("us")),
        "i8": pa.array([1, -2, None], pa.int8()),
        "u32": pa.array([1, 2, None], pa.uint32()),
        "f32": pa.array([1.5, None, 2.0], pa.float32()),
        "flag": pa.array([True, None, False]),
        "text": pa.array(["a", None, "é"]),
        "day": pa.array([1, 2, None], pa.date32()),
    }
)


def test_events_skipping_duckdb_come_back_as_duckdb_returns_them() -> None:
    view = ViewData(make_case(0, "int").schema, ())
    with_metadata = ROUND_TRIP_EVENTS.replace_schema_metadata({b"pandas": b"{}"})
    db = joins._LazyConnection(None)
    try:
        fast = joins._typed_events(db, with_metadata, [view], "ts")
        slow = joins._cast_events(db.get(), ROUND_TRIP_EVENTS, {"id": "BIGINT"}, "ts")
    finally:
        db.close()
    assert fast.schema == slow.schema and fast.schema.metadata is None
    assert fast.equals(slow)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.set_column(0, "id", pa.array(["1", "x", "3"])), "wrong type"),
        (lambda t: t.drop_columns(["id"]), "no column 'id'"),
        (lambda t: t.drop_columns(["ts"]), "no column 'ts'"),
    ],
)
def test_events_that_do_not_fit_are_refused(
    change: Callable[[pa.Table], pa.Table], message: str
) -> None:
    view = ViewData(make_case(0, "int").schema, ())
    with pytest.raises(InvalidInputError, match=message):
        point_in_time_join(change(ROUND_TRIP_EVENTS), [view], timestamp_column="ts")


@pytest.mark.parametrize("seed", range(3))
def test_the_search_in_runs_finds_what_a_scan_finds(seed: int) -> None:
    """Run lengths from 1 to a few thousand (so a few long runs take the long steps alone)."""
    rng = np.random.default_rng(seed)
    lengths = np.where(
        rng.random(400) < 0.02, rng.integers(500, 3000, 400), rng.integers(1, 20, 400)
    )
    times = np.concatenate([np.sort(rng.integers(0, 50, n)) for n in lengths]).astype(np.int64)
    ends = np.cumsum(lengths)
    runs = rng.integers(0, len(lengths), 5000)
    start, end = (ends - lengths)[runs], ends[runs]
    at = rng.integers(-2, 52, 5000).astype(np.int64)
    found = joins._last_at_or_before(times, start.astype(np.int64), end.astype(np.int64), at)
    scanned = [
        s - 1 + int(np.searchsorted(times[s:e], a, side="right"))
        for s, e, a in zip(start, end, at, strict=True)
    ]
    assert found.tolist() == scanned
