"""The feature store through a real hub process: define, ingest, materialise, look up, train."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from appliance.cli.demo.processes import ServiceProcess
from appliance.cli.demo.site import Site
from appliance.client.hub import HubClient
from appliance.errors import HubRejectedError
from appliance.wire.features import (
    EntityDefinition,
    FeatureDefinitions,
    FeatureSpec,
    FeatureViewDefinition,
    KeyColumn,
)

DEFINITIONS = FeatureDefinitions(
    entities=[EntityDefinition(name="driver", join_keys=[KeyColumn(name="driver_id")])],
    feature_views=[
        FeatureViewDefinition(
            name="driver_hourly",
            entity="driver",
            zone="ae-dxb",
            ttl_seconds=3600,
            features=[
                FeatureSpec(name="trips", dtype="int64"),
                FeatureSpec(name="rating", dtype="float64"),
            ],
        )
    ],
)


def test_define_ingest_materialise_look_up_and_build_a_training_set(
    engineer: HubClient, approver: HubClient
) -> None:
    defined = engineer.define_features(DEFINITIONS)
    assert [(v.name, v.version, v.changed) for v in defined.feature_views] == [
        ("driver_hourly", 1, True)
    ]
    with pytest.raises(HubRejectedError) as denied:  # approvers read features, never write them
        approver.define_features(DEFINITIONS)
    assert denied.value.status_code == 403

    now = datetime.now(UTC).replace(microsecond=0)
    earlier = (now - timedelta(minutes=10)).isoformat()
    later = (now - timedelta(minutes=1)).isoformat()
    bad = f"driver_id,event_timestamp,trips,rating\n1,{earlier},3,4.5\n2,{earlier},many,4.0\n"
    with pytest.raises(HubRejectedError) as refused:
        engineer.ingest_features("driver_hourly", bad.encode(), filename="bad.csv")
    assert refused.value.status_code == 422
    assert "row 2, column trips" in str(refused.value)

    good = f"driver_id,event_timestamp,trips,rating\n1,{earlier},3,4.5\n1,{later},4,4.6\n"
    ingested = engineer.ingest_features("driver_hourly", good.encode(), filename="good.csv")
    assert ingested.rows == 2 and len(ingested.snapshot_sha256) == 64

    materialized = engineer.materialize_features("driver_hourly")
    assert materialized.entities == 1
    answer = approver.online_features("driver_hourly", [1, 99])
    assert answer.results[0].status == "ok"
    assert answer.results[0].values == {"trips": 4, "rating": 4.6}
    assert answer.results[1].status == "missing"

    events = pa.table(
        {
            "driver_id": [1, 1],
            "event_timestamp": pa.array(
                [now - timedelta(minutes=5), now - timedelta(minutes=30)],
                pa.timestamp("us", tz="UTC"),
            ),
            "label": [1, 0],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(events, buffer)
    content, snapshots = engineer.training_set(buffer.getvalue(), ["driver_hourly"], zone="ae-dxb")
    table = pq.read_table(io.BytesIO(content)).to_pydict()
    assert table["driver_hourly__trips"] == [3, None]  # the 1-minute-old value is in the future
    assert [s.snapshot_sha256 for s in snapshots] == [ingested.snapshot_sha256]
    assert [v.name for v in approver.list_feature_views()] == ["driver_hourly"]


def test_online_lookups_refuse_like_every_other_route(
    site: Site, hub: ServiceProcess, engineer: HubClient, admin: HubClient
) -> None:
    """The lookup route is answered in front of Litestar; its errors must not differ."""
    url = f"{hub.url}/api/v1/features/online"
    body = {"view": "driver_hourly", "keys": [1]}
    anonymous = httpx.post(url, json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "AuthenticationError"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    worker = site.client(hub.url, "gpu01")  # a worker account reads no features
    with worker, pytest.raises(HubRejectedError) as denied:
        worker.online_features("driver_hourly", [1])
    assert denied.value.status_code == 403 and "features:read" in str(denied.value)
    refused = admin.list_audit(action="access.refused")
    assert any(e["actor"] == "user:gpu01" for e in refused)
    token = {"authorization": f"Bearer {engineer.credentials.bearer()}"}  # type: ignore[union-attr]
    cases = [
        (b"{not json", 400),
        (b'{"view": "driver_hourly"}', 400),
        (json.dumps({"view": "driver_hourly", "keys": list(range(1001))}).encode(), 400),
        (json.dumps({"view": "no_such_view", "keys": [1]}).encode(), 404),
        (b" " * (2 << 20), 413),
    ]
    for content, status in cases:
        answer = httpx.post(url, content=content, headers=token)
        assert answer.status_code == status, (content[:40], answer.text)
        assert answer.json()["status_code"] == status
