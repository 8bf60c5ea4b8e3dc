"""The online store: the latest value per entity, in a dict, for O(1) lookups.

A view's entry is built from one DuckDB query over its snapshot files
(:func:`hub.features.offline.latest_per_entity`) and replaced whole, so a
lookup sees either the old or the new materialisation, never half of one.
Each entry is also written to ``<root>/<view>.arrow`` (Arrow IPC, atomically)
so a restarted hub serves at once without re-reading the offline store.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from appliance.clock import iso_utc
from appliance.errors import NotFoundError
from appliance.fsutil import atomic_open
from appliance.wire.features import KeyValue, OnlineResponse, OnlineValue
from hub.features.offline import ViewSchema

log = logging.getLogger(__name__)

EVENT_COLUMN = "__event_us"
Key = KeyValue | tuple[KeyValue, ...]


@dataclass(frozen=True)
class OnlineTable:
    """One materialised view version: key -> (feature values..., event time in epoch µs)."""

    schema: ViewSchema
    materialized_at: datetime
    snapshots: tuple[str, ...]
    rows: dict[Key, tuple[Any, ...]]

    @classmethod
    def from_arrow(
        cls,
        schema: ViewSchema,
        table: pa.Table,
        materialized_at: datetime,
        snapshots: Sequence[str],
    ) -> OnlineTable:
        keys = [table.column(k).to_pylist() for k in schema.key_names]
        key_list: list[Key] = keys[0] if len(keys) == 1 else list(zip(*keys, strict=True))
        values = [table.column(f.name).to_pylist() for f in schema.features]
        values.append(table.column(EVENT_COLUMN).to_pylist())
        rows = dict(zip(key_list, zip(*values, strict=True), strict=True))
        return cls(schema, materialized_at, tuple(snapshots), rows)

    def to_arrow(self) -> pa.Table:
        s = self.schema
        key_columns: list[list[Any]] = [[] for _ in s.key_names]
        value_columns: list[list[Any]] = [[] for _ in range(len(s.features) + 1)]
        for key, row in self.rows.items():
            parts = key if isinstance(key, tuple) else (key,)
            for column, part in zip(key_columns, parts, strict=True):
                column.append(part)
            for column, value in zip(value_columns, row, strict=True):
                column.append(value)
        types = {
            "int64": pa.int64(),
            "float64": pa.float64(),
            "bool": pa.bool_(),
            "string": pa.string(),
        }
        arrays = [
            pa.array(c, types[k.dtype]) for c, k in zip(key_columns, s.join_keys, strict=True)
        ]
        arrays += [
            pa.array(c, types[f.dtype]) for c, f in zip(value_columns, s.features, strict=False)
        ]
        arrays.append(pa.array(value_columns[-1], pa.int64()))
        names = [*s.key_names, *(f.name for f in s.features), EVENT_COLUMN]
        meta = {
            "view": s.name,
            "version": s.version,
            "materialized_at": iso_utc(self.materialized_at),
            "snapshots": list(self.snapshots),
        }
        return pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(
            {"appliance": json.dumps(meta)}
        )


def _normalise(raw: KeyValue | list[KeyValue], schema: ViewSchema) -> Key | None:
    """The dict key for a requested key, or None if it cannot be one of this view's keys."""
    parts = raw if isinstance(raw, list) else [raw]
    if len(parts) != len(schema.join_keys):
        return None
    out: list[KeyValue] = []
    for part, column in zip(parts, schema.join_keys, strict=True):
        if column.dtype == "int64":
            if isinstance(part, bool):
                return None
            if isinstance(part, str):
                try:
                    part = int(part)
                except ValueError:
                    return None
        elif not isinstance(part, str):
            part = str(part)
        out.append(part)
    return out[0] if len(out) == 1 else tuple(out)


class OnlineStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tables: dict[str, OnlineTable] = {}

    def views(self) -> list[str]:
        return sorted(self._tables)

    def put(self, table: OnlineTable, *, persist: bool = True) -> None:
        if persist:
            path = self.root / f"{table.schema.name}.arrow"
            data = table.to_arrow()
            with atomic_open(path) as handle, pa.ipc.new_file(handle, data.schema) as writer:
                writer.write_table(data)
        self._tables[table.schema.name] = table  # one reference swap: readers never see half

    def load(self, schemas: dict[str, ViewSchema]) -> list[str]:
        """Reload the persisted tables whose view version is still ``schemas[view]``."""
        loaded: list[str] = []
        for path in sorted(self.root.glob("*.arrow")):
            try:
                with pa.memory_map(str(path)) as source:
                    data = pa.ipc.open_file(source).read_all()
                meta = json.loads((data.schema.metadata or {})[b"appliance"])
                schema = schemas.get(meta["view"])
                if schema is None or schema.version != meta["version"]:
                    continue
                at = datetime.fromisoformat(meta["materialized_at"].replace("Z", "+00:00"))
                self._tables[schema.name] = OnlineTable.from_arrow(
                    schema, data, at, meta["snapshots"]
                )
                loaded.append(schema.name)
            except (OSError, KeyError, ValueError, pa.ArrowException) as exc:
                log.warning("online store: ignoring %s: %s", path, exc)
        return loaded

    def table(self, view: str) -> OnlineTable:
        table = self._tables.get(view)
        if table is None:
            raise NotFoundError(
                f"feature view {view!r} is not in the online store",
                hint=f"materialise it first: 'appliance features materialize {view}'",
            )
        return table

    def lookup(
        self, view: str, keys: Sequence[KeyValue | list[KeyValue]], *, now: float | None = None
    ) -> OnlineResponse:
        """Values per key: ``ok``, ``stale`` (older than the TTL, with its age) or ``missing``."""
        table = self.table(view)
        schema = table.schema
        names = [f.name for f in schema.features]
        now_us = int((time.time() if now is None else now) * 1_000_000)
        ttl_us = schema.ttl_seconds * 1_000_000
        rows = table.rows
        results: list[OnlineValue] = []
        for raw in keys:
            key = _normalise(raw, schema)
            row = rows.get(key) if key is not None else None
            if row is None:
                results.append(OnlineValue(key=raw, status="missing"))
                continue
            age_us = now_us - row[-1]
            results.append(
                OnlineValue(
                    key=raw,
                    status="stale" if age_us > ttl_us else "ok",
                    values=dict(zip(names, row, strict=False)),
                    event_time=iso_utc(datetime.fromtimestamp(row[-1] / 1e6, UTC)),
                    age_seconds=round(age_us / 1e6, 3),
                )
            )
        return OnlineResponse(
            view=view,
            version=schema.version,
            materialized_at=iso_utc(table.materialized_at),
            results=results,
        )
