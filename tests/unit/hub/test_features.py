"""The feature store: definitions and versions, ingestion, point-in-time joins, online store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from appliance.errors import ConflictError, InvalidInputError, ResidencyRefusedError
from appliance.wire.features import (
    EntityDefinition,
    FeatureDefinitions,
    FeatureSpec,
    FeatureViewDefinition,
    KeyColumn,
)
from hub.audit.records import AuditEntryRecord
from hub.audit.service import AuditLog
from hub.features.offline import IngestRefusedError
from hub.features.records import FeatureSnapshotRecord
from hub.features.service import FeatureStore
from hub.residency.gate import ResidencyGate
from hub.residency.policy import ResidencyPolicy

ACTOR = "user:alice"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CUSTOMER = EntityDefinition(name="customer", join_keys=[KeyColumn(name="customer_id")])
POLICY = ResidencyPolicy(
    zones=("ae-dxb", "ae-auh"),
    read={"ae-dxb": frozenset({"ae-dxb"}), "ae-auh": frozenset({"ae-auh", "ae-dxb"})},
)


def stats_view(**changes: object) -> FeatureViewDefinition:
    fields: dict[str, object] = {
        "name": "customer_stats",
        "entity": "customer",
        "zone": "ae-dxb",
        "ttl_seconds": 3600,
        "features": [
            FeatureSpec(name="spend", dtype="float64"),
            FeatureSpec(name="orders", dtype="int64"),
            FeatureSpec(name="vip", dtype="bool"),
            FeatureSpec(name="segment", dtype="string"),
        ],
    }
    fields.update(changes)
    return FeatureViewDefinition(**fields)  # type: ignore[arg-type]


@pytest.fixture
def store(engine: Engine, tmp_path: Path) -> FeatureStore:
    return make_store(engine, tmp_path)


def make_store(engine: Engine, tmp_path: Path) -> FeatureStore:
    audit = AuditLog()
    gate = ResidencyGate(engine, POLICY, audit)
    return FeatureStore(engine, tmp_path / "features", audit=audit, gate=gate, home_zone="ae-dxb")


@pytest.fixture
def defined(store: FeatureStore) -> FeatureStore:
    store.define(FeatureDefinitions(entities=[CUSTOMER], feature_views=[stats_view()]), actor=ACTOR)
    return store


def rows(*items: tuple[int, datetime, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [i[0] for i in items],
            "event_timestamp": [i[1] for i in items],
            "spend": [i[2] for i in items],
            "orders": [int(i[2]) for i in items],
            "vip": [i[2] > 100 for i in items],
            "segment": [f"s{int(i[2])}" for i in items],
        }
    )


# -- definitions ---------------------------------------------------------------------------


def test_redefining_unchanged_is_idempotent_and_a_change_makes_a_new_version(
    defined: FeatureStore,
) -> None:
    again = defined.define(
        FeatureDefinitions(
            entities=[CUSTOMER], feature_views=[stats_view(description="doc changes only")]
        ),
        actor=ACTOR,
    )
    assert [(v.version, v.changed) for v in again.feature_views] == [(1, False)]
    assert not again.entities[0].changed
    changed = defined.define(
        FeatureDefinitions(feature_views=[stats_view(ttl_seconds=7200)]), actor=ACTOR
    )
    assert [(v.version, v.changed) for v in changed.feature_views] == [(2, True)]
    assert defined.get_view("customer_stats").ttl_seconds == 7200
    assert defined.get_view("customer_stats", 1).ttl_seconds == 3600
    assert [v.name for v in defined.list_views(limit=10)] == ["customer_stats"]
    assert defined.list_views(after="customer_stats") == []


def test_bad_definitions_are_refused_naming_the_field(defined: FeatureStore) -> None:
    with pytest.raises(InvalidInputError, match="zone"):
        defined.define(FeatureDefinitions(feature_views=[stats_view(zone="us-east")]), actor=ACTOR)
    with pytest.raises(InvalidInputError, match="entity"):
        defined.define(FeatureDefinitions(feature_views=[stats_view(entity="nobody")]), actor=ACTOR)
    with pytest.raises(InvalidInputError, match="clashes"):
        defined.define(
            FeatureDefinitions(
                feature_views=[
                    stats_view(features=[FeatureSpec(name="customer_id", dtype="int64")])
                ]
            ),
            actor=ACTOR,
        )
    with pytest.raises(InvalidInputError, match="ttl_seconds"):
        defined.define(FeatureDefinitions(feature_views=[stats_view(ttl_seconds=0)]), actor=ACTOR)
    with pytest.raises(ConflictError, match="join keys never change"):
        defined.define(
            FeatureDefinitions(
                entities=[
                    EntityDefinition(
                        name="customer", join_keys=[KeyColumn(name="cid", dtype="string")]
                    )
                ]
            ),
            actor=ACTOR,
        )


# -- ingestion -----------------------------------------------------------------------------


def test_ingest_from_dataframe_csv_and_parquet_records_content_hashed_snapshots(
    defined: FeatureStore, tmp_path: Path
) -> None:
    frame = rows((1, T0, 10.0), (2, T0, 20.0))
    first = defined.ingest("customer_stats", frame, actor=ACTOR)
    stored = defined.offline_root / first.path
    assert stored.name == f"{first.snapshot_sha256}.parquet"
    assert stored.parent.name == "v1"
    assert pq.read_table(stored).num_rows == 2
    again = defined.ingest("customer_stats", frame, actor=ACTOR)
    assert again.already_present and again.snapshot_sha256 == first.snapshot_sha256

    csv = tmp_path / "more.csv"
    csv.write_text(
        "customer_id,event_timestamp,spend,orders,vip,segment,extra\n"
        "3,2025-03-01T13:00:00Z,1.5,2,true,a,x\n"
        "4,2025-03-01 14:00:00,2.5,3,0,b,y\n"
    )
    from_csv = defined.ingest("customer_stats", csv, actor=ACTOR, source="more.csv")
    assert from_csv.rows == 2 and from_csv.ignored_columns == ["extra"]
    assert from_csv.max_event_time == "2025-03-01T14:00:00Z"
    parquet = tmp_path / "more.parquet"
    pq.write_table(pa.Table.from_pandas(rows((5, T0, 5.0)), preserve_index=False), parquet)
    assert defined.ingest("customer_stats", parquet, actor=ACTOR).rows == 1
    assert len(defined.list_snapshots("customer_stats")) == 3


def test_bad_rows_refuse_the_whole_ingest_with_a_report_and_write_nothing(
    defined: FeatureStore, engine: Engine, tmp_path: Path
) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text(
        "customer_id,event_timestamp,spend,orders,vip,segment\n"
        "1,2025-03-01T12:00:00Z,1.0,1,true,a\n"
        "x,2025-03-01T12:00:00Z,1.0,1,true,a\n"
        "2,not-a-time,1.0,1.5,maybe,a\n"
        "3,,1.0,1,true,a\n"
        "1,2025-03-01T12:00:00Z,2.0,2,false,b\n"
    )
    with pytest.raises(IngestRefusedError) as caught:
        defined.ingest("customer_stats", csv, actor=ACTOR)
    found = {(p.row, p.column, p.reason.split(":")[0]) for p in caught.value.problems}
    assert found == {
        (2, "customer_id", "not a valid bigint"),
        (3, "event_timestamp", "not a valid timestamp"),
        (3, "orders", "not a whole number"),
        (3, "vip", "not a valid boolean"),
        (4, "event_timestamp", "missing value"),
        (5, "event_timestamp", "duplicate of row 1 (same key and timestamp)"),
    }
    assert "row 2, column customer_id" in str(caught.value)
    with pytest.raises(IngestRefusedError, match="column missing"):
        defined.ingest("customer_stats", rows((1, T0, 1.0)).drop(columns=["spend"]), actor=ACTOR)
    with Session(engine) as session:
        assert session.exec(select(FeatureSnapshotRecord)).all() == []
    assert [p for p in defined.offline_root.rglob("*") if p.is_file()] == []


def test_a_failing_record_write_leaves_no_file(
    defined: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(defined.audit, "append", broken)
    with pytest.raises(RuntimeError):
        defined.ingest("customer_stats", rows((1, T0, 1.0)), actor=ACTOR)
    assert [p for p in defined.offline_root.rglob("*") if p.is_file()] == []
    assert defined.list_snapshots("customer_stats") == []


# -- point-in-time joins -------------------------------------------------------------------


def test_training_set_never_leaks_a_future_value_and_respects_the_ttl(
    defined: FeatureStore,
) -> None:
    hour = timedelta(hours=1)
    defined.ingest(
        "customer_stats",
        rows(
            (1, T0 - 2 * hour, 1.0),  # older than the TTL at T0 + 1.5h, fine at T0
            (1, T0, 2.0),  # exactly at the second event's time
            (1, T0 + 10 * hour, 999.0),  # the future for every event
            (2, T0 - 3 * hour, 7.0),  # customer 2's only value: too old at T0
        ),
        actor=ACTOR,
    )
    events = pa.table(
        {
            "customer_id": [1, 1, 1, 2, 3],
            "event_timestamp": pa.array(
                [T0 - hour, T0, T0 + 1.5 * hour, T0, T0], pa.timestamp("us", tz="UTC")
            ),
            "label": [0, 1, 0, 1, 0],
        }
    )
    result = defined.training_set(events, ["customer_stats"], zone="ae-dxb", actor=ACTOR)
    out = result.table.to_pydict()
    assert out["label"] == [0, 1, 0, 1, 0]  # order and labels kept
    assert out["customer_stats__spend"] == [1.0, 2.0, None, None, None]
    assert out["customer_stats__segment"] == ["s1", "s2", None, None, None]
    assert 999.0 not in out["customer_stats__spend"]
    assert [r.snapshot_sha256 for r in result.snapshots] == [
        s.snapshot_sha256 for s in defined.list_snapshots("customer_stats")
    ]


def test_a_later_ingest_wins_a_tie_and_a_version_can_be_named(defined: FeatureStore) -> None:
    defined.ingest("customer_stats", rows((1, T0, 1.0)), actor=ACTOR)
    defined.ingest("customer_stats", rows((1, T0, 5.0)), actor=ACTOR)
    events = pd.DataFrame({"customer_id": [1], "event_timestamp": [T0 + timedelta(minutes=1)]})
    table = defined.training_set(events, ["customer_stats:1"], zone="ae-dxb", actor=ACTOR).table
    assert table.column("customer_stats__spend").to_pylist() == [5.0]


def test_cross_zone_read_is_refused_and_audited(defined: FeatureStore, engine: Engine) -> None:
    defined.ingest("customer_stats", rows((1, T0, 1.0)), actor=ACTOR)
    events = pd.DataFrame({"customer_id": [1], "event_timestamp": [T0]})
    defined.training_set(events, ["customer_stats"], zone="ae-auh", actor=ACTOR)  # auh reads dxb
    defined.define(
        FeatureDefinitions(feature_views=[stats_view(name="auh_stats", zone="ae-auh")]),
        actor=ACTOR,
    )
    defined.ingest("auh_stats", rows((1, T0, 1.0)), actor=ACTOR)
    with pytest.raises(ResidencyRefusedError, match=r"read\.ae-dxb"):
        defined.training_set(events, ["auh_stats"], zone="ae-dxb", actor=ACTOR)
    with pytest.raises(InvalidInputError, match="zone"):
        defined.training_set(events, ["auh_stats"], zone="mars", actor=ACTOR)
    with Session(engine) as session:
        decisions = session.exec(
            select(AuditEntryRecord).where(AuditEntryRecord.action == "residency.decision")
        ).all()
    assert [d.outcome for d in decisions] == ["allowed", "refused"]
    defined.materialize("auh_stats")
    with pytest.raises(ResidencyRefusedError):
        defined.lookup("auh_stats", [1], zone="ae-dxb")


# -- online store --------------------------------------------------------------------------


def test_online_lookup_answers_ok_stale_and_missing_and_survives_a_restart(
    defined: FeatureStore, engine: Engine, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    defined.ingest(
        "customer_stats",
        rows((1, now - timedelta(hours=5), 1.0), (1, now - timedelta(minutes=5), 2.0)),
        actor=ACTOR,
    )
    defined.ingest("customer_stats", rows((2, now - timedelta(hours=2), 3.0)), actor=ACTOR)
    result = defined.materialize("customer_stats", actor=ACTOR)
    assert result.entities == 2 and len(result.snapshots) == 2
    for store in (defined, make_store(engine, tmp_path)):  # the second reloads from disk
        answer = store.lookup("customer_stats", [1, "2", 3, "x"])
        fresh, stale, missing, bad = answer.results
        assert fresh.status == "ok" and fresh.values is not None
        assert fresh.values == {"spend": 2.0, "orders": 2, "vip": False, "segment": "s2"}
        assert stale.status == "stale" and stale.age_seconds is not None
        assert 7100 < stale.age_seconds < 7300
        assert (missing.status, missing.values, bad.status) == ("missing", None, "missing")
    assert json.loads(json.dumps(answer.results[0].key)) == 1


def test_online_lookup_among_many_entities_answers_each_its_own_row(
    defined: FeatureStore,
) -> None:
    """50,000 entities in the online store; how fast a lookup is, bench/bench_features.py
    measures (p50/p99), not this test."""
    frame = pd.DataFrame(
        {
            "customer_id": range(50_000),
            "event_timestamp": [T0] * 50_000,
            "spend": [float(i) for i in range(50_000)],
            "orders": [i % 7 for i in range(50_000)],
            "vip": [i % 2 == 0 for i in range(50_000)],
            "segment": ["a"] * 50_000,
        }
    )
    defined.ingest("customer_stats", frame, actor=ACTOR)
    defined.materialize("customer_stats")
    for key in (0, 1, 24_999, 49_999):
        (found,) = defined.lookup("customer_stats", [key]).results
        assert found.values is not None
        assert (found.values["spend"], found.values["orders"]) == (float(key), key % 7)
        assert found.values["vip"] is (key % 2 == 0)
