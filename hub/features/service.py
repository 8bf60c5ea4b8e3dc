"""The feature store service: definitions in the hub's records, data in Parquet, reads gated.

The database is the source of truth for which snapshot files belong to a view
version: a file is published (renamed into place) inside the transaction that
records it, and readers only ever open files the database names. A crash
between the rename and the commit leaves an unreferenced file, never a
half-recorded ingest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from appliance.clock import as_utc, iso_utc, utcnow
from appliance.errors import ConflictError, InvalidInputError, NotFoundError
from appliance.wire.features import (
    DefineResult,
    EntityInfo,
    FeatureDefinitions,
    FeatureViewInfo,
    IngestResult,
    KeyColumn,
    KeyValue,
    MaterializeResult,
    OnlineResponse,
    SnapshotRef,
)
from hub.audit.service import AuditLog
from hub.db import session_scope
from hub.features import definitions as defs
from hub.features.joins import point_in_time_join
from hub.features.offline import (
    ViewData,
    ViewSchema,
    label_events,
    latest_per_entity,
    read_table,
    stage_snapshot,
    validate,
)
from hub.features.online import OnlineStore, OnlineTable
from hub.features.records import (
    EntityRecord,
    FeatureSnapshotRecord,
    FeatureViewRecord,
    FeatureViewVersionRecord,
)
from hub.pagination import page_after
from hub.residency.gate import ResidencyGate

log = logging.getLogger(__name__)

IngestSource: TypeAlias = pa.Table | Path | bytes | Any
"""An Arrow table, a pandas DataFrame, a CSV or Parquet file, or such a file's bytes."""


@dataclass(frozen=True)
class TrainingSet:
    table: pa.Table
    snapshots: list[SnapshotRef]
    """Every snapshot the join read: the lineage of a model trained on ``table``."""


def _entity_info(record: EntityRecord, *, changed: bool = False) -> EntityInfo:
    return EntityInfo(
        name=record.name,
        join_keys=[KeyColumn(**k) for k in record.join_keys],  # type: ignore[arg-type]
        description=record.description,
        created_at=iso_utc(record.created_at),
        created_by=record.created_by,
        changed=changed,
    )


def _view_info(
    record: FeatureViewVersionRecord, snapshots: int, *, changed: bool = False
) -> FeatureViewInfo:
    d = record.definition
    schema = ViewSchema.from_definition(d, record.version)
    return FeatureViewInfo(
        name=schema.name,
        version=record.version,
        entity=d["entity"],
        join_keys=list(schema.join_keys),
        features=list(schema.features),
        zone=schema.zone,
        ttl_seconds=schema.ttl_seconds,
        timestamp_column=schema.timestamp_column,
        description=d.get("description", ""),
        definition_sha256=record.definition_sha256,
        created_at=iso_utc(record.created_at),
        created_by=record.created_by,
        snapshots=snapshots,
        changed=changed,
    )


def parse_view_ref(ref: str) -> tuple[str, int | None]:
    """``name`` (the latest version) or ``name:version``."""
    name, sep, version = ref.partition(":")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise InvalidInputError(f"views: {ref!r} is not 'name' or 'name:version'")
    return name, int(version)


class FeatureStore:
    def __init__(
        self,
        engine: Engine,
        root: Path,
        *,
        audit: AuditLog,
        gate: ResidencyGate,
        home_zone: str,
    ) -> None:
        self.engine = engine
        self.root = root
        self.offline_root = root / "offline"
        self.audit = audit
        self.gate = gate
        self.home_zone = home_zone
        self.online = OnlineStore(root / "online")
        self._materialize_lock = threading.Lock()
        self.online.load(self._latest_schemas())

    # -- definitions -------------------------------------------------------------------

    def define(self, definitions: FeatureDefinitions, *, actor: str) -> DefineResult:
        """Create or update entities and views; an unchanged definition changes nothing.

        A view whose definition (features, types, entity keys, timestamp column,
        zone or TTL; not its description) differs from its latest version gets
        the next version number. Entities' join keys never change.
        """
        for entity in definitions.entities:
            defs.check_entity(entity)
        policy = self.gate.policy
        with session_scope(self.engine) as session:
            entities: list[EntityInfo] = []
            for entity in definitions.entities:
                keys = [{"name": k.name, "dtype": k.dtype} for k in entity.join_keys]
                record = session.exec(
                    select(EntityRecord).where(EntityRecord.name == entity.name)
                ).first()
                if record is not None:
                    if record.join_keys != keys:
                        raise ConflictError(
                            f"entities[{entity.name}].join_keys: an entity's join keys never "
                            f"change (now {record.join_keys})",
                            hint="define a new entity and views that use it",
                        )
                    entities.append(_entity_info(record))
                    continue
                record = EntityRecord(
                    name=entity.name,
                    join_keys=keys,
                    description=entity.description,
                    created_by=actor,
                )
                session.add(record)
                session.flush()
                self.audit.append(
                    session,
                    actor=actor,
                    action="features.entity.define",
                    target=f"feature-entity:{entity.name}",
                    outcome="ok",
                    detail={"join_keys": keys},
                )
                entities.append(_entity_info(record, changed=True))
            views: list[FeatureViewInfo] = []
            for view in definitions.feature_views:
                entity_record = session.exec(
                    select(EntityRecord).where(EntityRecord.name == view.entity)
                ).first()
                if entity_record is None:
                    raise InvalidInputError(
                        f"feature_views[{view.name}].entity: no entity named {view.entity!r}"
                    )
                join_keys = [KeyColumn(**k) for k in entity_record.join_keys]  # type: ignore[arg-type]
                defs.check_view(view, join_keys)
                policy.check_zones([view.zone], f"feature_views[{view.name}].zone")
                definition = defs.stored_definition(view, join_keys)
                digest = defs.definition_sha256(definition)
                views.append(self._define_view(session, definition, digest, actor))
        return DefineResult(entities=entities, feature_views=views)

    def _define_view(
        self, session: Session, definition: dict[str, Any], digest: str, actor: str
    ) -> FeatureViewInfo:
        name = definition["name"]
        view = session.exec(select(FeatureViewRecord).where(FeatureViewRecord.name == name)).first()
        if view is None:
            view = FeatureViewRecord(name=name)
            session.add(view)
            session.flush()
        else:
            latest = self._version(session, view, view.last_version)
            if latest.definition_sha256 == digest:
                return _view_info(latest, self._snapshot_count(session, latest))
        view.last_version += 1
        record = FeatureViewVersionRecord(
            view_id=view.id or 0,
            version=view.last_version,
            definition=definition,
            definition_sha256=digest,
            zone=definition["zone"],
            created_by=actor,
        )
        session.add(view)
        session.add(record)
        session.flush()
        self.audit.append(
            session,
            actor=actor,
            action="features.view.define",
            target=f"feature-view:{name}:v{record.version}",
            outcome="ok",
            detail={"definition_sha256": digest, "zone": definition["zone"]},
        )
        return _view_info(record, 0, changed=True)

    # -- reading definitions -----------------------------------------------------------

    def _view(self, session: Session, name: str) -> FeatureViewRecord:
        view = session.exec(select(FeatureViewRecord).where(FeatureViewRecord.name == name)).first()
        if view is None:
            raise NotFoundError(f"no feature view named {name!r}")
        return view

    def _version(
        self, session: Session, view: FeatureViewRecord, version: int | None = None
    ) -> FeatureViewVersionRecord:
        number = version or view.last_version
        record = session.exec(
            select(FeatureViewVersionRecord).where(
                FeatureViewVersionRecord.view_id == view.id,
                FeatureViewVersionRecord.version == number,
            )
        ).first()
        if record is None:
            raise NotFoundError(f"feature view {view.name!r} has no version {number}")
        return record

    def _snapshots(
        self, session: Session, record: FeatureViewVersionRecord
    ) -> list[FeatureSnapshotRecord]:
        return list(
            session.exec(
                select(FeatureSnapshotRecord)
                .where(FeatureSnapshotRecord.version_id == record.id)
                .order_by(col(FeatureSnapshotRecord.id))
            )
        )

    def _snapshot_count(self, session: Session, record: FeatureViewVersionRecord) -> int:
        return len(self._snapshots(session, record))

    def _latest_schemas(self) -> dict[str, ViewSchema]:
        with Session(self.engine) as session:
            out: dict[str, ViewSchema] = {}
            for view in session.exec(select(FeatureViewRecord)):
                record = self._version(session, view)
                out[view.name] = ViewSchema.from_definition(record.definition, record.version)
            return out

    def list_entities(self, *, after: str = "", limit: int = 100) -> list[EntityInfo]:
        with Session(self.engine) as session:
            rows = session.exec(
                page_after(select(EntityRecord), col(EntityRecord.name), after, limit)
            )
            return [_entity_info(r) for r in rows]

    def list_views(self, *, after: str = "", limit: int = 100) -> list[FeatureViewInfo]:
        """The latest version of each view, by name."""
        with Session(self.engine) as session:
            views = session.exec(
                page_after(select(FeatureViewRecord), col(FeatureViewRecord.name), after, limit)
            ).all()
            out = []
            for view in views:
                record = self._version(session, view)
                out.append(_view_info(record, self._snapshot_count(session, record)))
            return out

    def get_view(self, name: str, version: int | None = None) -> FeatureViewInfo:
        with Session(self.engine) as session:
            record = self._version(session, self._view(session, name), version)
            return _view_info(record, self._snapshot_count(session, record))

    def list_snapshots(
        self, name: str, *, version: int | None = None, after: int = 0, limit: int = 100
    ) -> list[IngestResult]:
        with Session(self.engine) as session:
            record = self._version(session, self._view(session, name), version)
            query = select(FeatureSnapshotRecord).where(
                FeatureSnapshotRecord.version_id == record.id
            )
            rows = session.exec(page_after(query, col(FeatureSnapshotRecord.id), after, limit))
            return [self._ingest_result(name, record.version, r) for r in rows]

    def _ingest_result(
        self,
        view: str,
        version: int,
        r: FeatureSnapshotRecord,
        *,
        ignored: list[str] | None = None,
        already: bool = False,
    ) -> IngestResult:
        return IngestResult(
            view=view,
            version=version,
            snapshot_sha256=r.sha256,
            rows=r.rows,
            path=r.path,
            min_event_time=iso_utc(r.min_event_time),
            max_event_time=iso_utc(r.max_event_time),
            created_at=iso_utc(r.created_at),
            created_by=r.created_by,
            ignored_columns=ignored or [],
            already_present=already,
        )

    # -- ingestion ---------------------------------------------------------------------

    def ingest(
        self,
        view: str,
        data: IngestSource,
        *,
        actor: str,
        version: int | None = None,
        source: str = "",
    ) -> IngestResult:
        """Check every row against the view version, then store all of them or none.

        The cast table is written to a temporary Parquet file and hashed; the
        file gets its final name ``<view>/v<version>/<sha256>.parquet`` in the
        same transaction that records the snapshot. Ingesting identical content
        again into the same version is a no-op that returns the first record.
        """
        with Session(self.engine) as session:
            record = self._version(session, self._view(session, view), version)
            schema = ViewSchema.from_definition(record.definition, record.version)
        table = read_table(data, name=source)
        clean, ignored = validate(table, schema)
        relative = Path(view) / f"v{schema.version}"
        staged = stage_snapshot(clean, self.offline_root / relative)
        first, last = snapshot_time_bounds(clean, schema.timestamp_column)
        published = False
        try:
            with session_scope(self.engine) as session:
                existing = session.exec(
                    select(FeatureSnapshotRecord).where(
                        FeatureSnapshotRecord.version_id == record.id,
                        FeatureSnapshotRecord.sha256 == staged.sha256,
                    )
                ).first()
                if existing is not None:
                    staged.discard()
                    return self._ingest_result(
                        view, schema.version, existing, ignored=ignored, already=True
                    )
                snapshot = FeatureSnapshotRecord(
                    version_id=record.id or 0,
                    sha256=staged.sha256,
                    path=str(relative / staged.final_path.name),
                    rows=staged.rows,
                    min_event_time=first,
                    max_event_time=last,
                    source=source[:256],
                    created_by=actor,
                )
                session.add(snapshot)
                session.flush()
                self.audit.append(
                    session,
                    actor=actor,
                    action="features.ingest",
                    target=f"feature-view:{view}:v{schema.version}",
                    outcome="ok",
                    detail={
                        "snapshot_sha256": staged.sha256,
                        "rows": staged.rows,
                        "source": source[:200],
                    },
                )
                staged.publish()
                published = True
        except BaseException:
            staged.discard()
            if published:
                staged.final_path.unlink(missing_ok=True)
            raise
        return self._ingest_result(view, schema.version, snapshot, ignored=ignored)

    # -- reading data ------------------------------------------------------------------

    def _view_data(
        self, session: Session, name: str, version: int | None
    ) -> tuple[ViewData, list[SnapshotRef]]:
        record = self._version(session, self._view(session, name), version)
        schema = ViewSchema.from_definition(record.definition, record.version)
        snapshots = self._snapshots(session, record)
        if not snapshots:
            raise InvalidInputError(
                f"views: feature view {name!r} version {record.version} has no data yet",
                hint="ingest into it first, or name an older version as 'name:version'",
            )
        files = tuple(self.offline_root / s.path for s in snapshots)
        refs = [
            SnapshotRef(view=name, version=record.version, snapshot_sha256=s.sha256)
            for s in snapshots
        ]
        return ViewData(schema, files), refs

    def training_set(
        self,
        events: IngestSource,
        views: Sequence[str],
        *,
        zone: str,
        actor: str,
        timestamp_column: str = "event_timestamp",
        source: str | None = None,
    ) -> TrainingSet:
        """A point-in-time correct training set for ``events`` from ``views``.

        The requester's ``zone`` must be allowed to read every view's zone
        (residency flow ``read``); the decision and the snapshots read are
        audited before any row is produced.
        """
        if not views:
            raise InvalidInputError("views: name at least one feature view")
        self.gate.policy.check_zones([zone], "zone")
        with Session(self.engine) as session:
            resolved = [self._view_data(session, *parse_view_ref(v)) for v in views]
        self._allow_read(resolved, zone=zone, actor=actor, source=source)
        table = (
            events
            if isinstance(events, Path) and events.suffix == ".parquet"
            else read_table(events)
        )
        joined = point_in_time_join(
            table, [d for d, _ in resolved], timestamp_column=timestamp_column
        )
        return TrainingSet(joined, [r for _, rs in resolved for r in rs])

    def labelled_training_set(
        self,
        label_view: str,
        label: str,
        views: Sequence[str],
        *,
        zone: str,
        actor: str,
        source: str | None = None,
    ) -> TrainingSet:
        """Like :meth:`training_set`, with the events read from a label view's rows.

        The answer has the label view's keys, event time and ``label`` column,
        then ``<view>__<feature>`` for each of ``views``; the lineage lists the
        label view's snapshots first.
        """
        if not views:
            raise InvalidInputError("features: name at least one feature view")
        self.gate.policy.check_zones([zone], "zone")
        with Session(self.engine) as session:
            labels = self._view_data(session, *parse_view_ref(label_view))
            resolved = [self._view_data(session, *parse_view_ref(v)) for v in views]
        if labels[0].schema.name in {d.schema.name for d, _ in resolved}:
            raise InvalidInputError(
                f"features: {labels[0].schema.name!r} is the label view",
                hint="a model must not learn from its own labels; leave it out of the features",
            )
        everything = [labels, *resolved]
        self._allow_read(everything, zone=zone, actor=actor, source=source)
        events = label_events(labels[0], label)
        joined = point_in_time_join(
            events, [d for d, _ in resolved], timestamp_column=labels[0].schema.timestamp_column
        )
        return TrainingSet(joined, [r for _, rs in everything for r in rs])

    def _allow_read(
        self,
        resolved: Sequence[tuple[ViewData, list[SnapshotRef]]],
        *,
        zone: str,
        actor: str,
        source: str | None,
    ) -> None:
        """Residency check and audit entry for reading these views' rows from ``zone``."""
        data = [d for d, _ in resolved]
        refs = [r for _, rs in resolved for r in rs]
        names = ", ".join(f"{d.schema.name}:v{d.schema.version}" for d in data)
        with session_scope(self.engine) as session:
            self.gate.check(
                session,
                flow="read",
                actor=actor,
                subject_zone=zone,
                object_zones=sorted({d.schema.zone for d in data}),
                target=f"feature-views:{names}",
                source=source,
            )
            self.audit.append(
                session,
                actor=actor,
                action="features.training-set",
                target=f"feature-views:{names}",
                outcome="ok",
                source=source,
                detail={"zone": zone, "snapshots": [r.snapshot_sha256 for r in refs]},
            )

    # -- online store ------------------------------------------------------------------

    def materialize(self, view: str, *, actor: str = "system:scheduler") -> MaterializeResult:
        """Rebuild the view's online entry from its latest version's snapshots."""
        with self._materialize_lock:
            with Session(self.engine) as session:
                data, refs = self._view_data(session, view, None)
            at = utcnow()
            latest = latest_per_entity(data)
            table = OnlineTable.from_arrow(
                data.schema, latest, at, [r.snapshot_sha256 for r in refs]
            )
            self.online.put(table)
            with session_scope(self.engine) as session:
                self.audit.append(
                    session,
                    actor=actor,
                    action="features.materialize",
                    target=f"feature-view:{view}:v{data.schema.version}",
                    outcome="ok",
                    detail={"entities": len(table.rows), "snapshots": list(table.snapshots)},
                )
        return MaterializeResult(
            view=view,
            version=data.schema.version,
            entities=len(table.rows),
            materialized_at=iso_utc(at),
            snapshots=list(table.snapshots),
        )

    def materialize_online_views(self) -> list[MaterializeResult]:
        """Refresh every view already in the online store (the scheduled job)."""
        done: list[MaterializeResult] = []
        for view in self.online.views():
            try:
                done.append(self.materialize(view))
            except (NotFoundError, InvalidInputError) as exc:
                log.warning("scheduled materialisation of %s skipped: %s", view, exc)
        return done

    def lookup(
        self,
        view: str,
        keys: Sequence[KeyValue | list[KeyValue]],
        *,
        zone: str | None = None,
        actor: str = "system",
    ) -> OnlineResponse:
        """Online values per key; a requester outside the view's readers is refused (audited).

        Allowed lookups are not audited one by one (they are the hot path);
        materialisation, which moves the rows into the online store, is.
        """
        table = self.online.table(view)
        subject = zone or self.home_zone
        decision = self.gate.policy.decide("read", subject, [table.schema.zone])
        if not decision.allowed:
            with session_scope(self.engine) as session:
                self.gate.check(
                    session,
                    flow="read",
                    actor=actor,
                    subject_zone=subject,
                    object_zones=[table.schema.zone],
                    target=f"feature-view:{view}:online",
                )
        return self.online.lookup(view, keys)


def snapshot_time_bounds(table: pa.Table, column: str) -> tuple[datetime, datetime]:
    bounds = pc.min_max(table.column(column))
    return as_utc(bounds["min"].as_py()), as_utc(bounds["max"].as_py())
