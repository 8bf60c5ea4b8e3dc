"""The demo's feature store: breast-cancer scans as a feature view, diagnoses as labels.

Each of the 569 patients of scikit-learn's breast-cancer data gets a scan (30
measurements) stamped a day before their diagnosis; the diagnosis view holds
the label. A training job joins them point-in-time: the scan as it stood at
the diagnosis, never a later one.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from appliance.client.hub import HubClient
from appliance.wire.features import (
    EntityDefinition,
    FeatureDefinitions,
    FeatureSpec,
    FeatureViewDefinition,
    KeyColumn,
)
from appliance.wire.training import GateSpec, JobSpec

SCANS = "tumour_scans"
DIAGNOSES = "diagnoses"
LABEL = "benign"
DIAGNOSED_AT = datetime(2026, 6, 1, tzinfo=UTC)
TEST_FRACTION = 0.2
TEST_FRACTION = 0.2


def column_name(feature: str) -> str:
    """``mean radius`` → ``mean_radius``: view columns are SQL identifiers."""
    return re.sub(r"[^a-z0-9]+", "_", feature.lower()).strip("_")


def definitions(zone: str, names: list[str]) -> FeatureDefinitions:
    return FeatureDefinitions(
        entities=[EntityDefinition(name="patient", join_keys=[KeyColumn(name="patient_id")])],
        feature_views=[
            FeatureViewDefinition(
                name=SCANS,
                entity="patient",
                zone=zone,
                ttl_seconds=30 * 86400,
                features=[FeatureSpec(name=n, dtype="float64") for n in names],
                description="tumour measurements from the imaging lab",
            ),
            FeatureViewDefinition(
                name=DIAGNOSES,
                entity="patient",
                zone=zone,
                ttl_seconds=365 * 86400,
                features=[FeatureSpec(name=LABEL, dtype="int64")],
                description="confirmed diagnoses (1 = benign, 0 = malignant)",
            ),
        ],
    )


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def load_clinic(hub: HubClient, zone: str) -> tuple[int, int]:
    """Define both views and ingest the data; return (scan rows, diagnosis rows)."""
    # lazy: scikit-learn takes 1.1 s; only the demo's data needs it
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [column_name(str(n)) for n in data.feature_names]
    hub.define_features(definitions(zone, names))
    ids = np.arange(1, len(data.target) + 1, dtype=np.int64)
    scanned = [DIAGNOSED_AT - timedelta(days=1)] * len(ids)
    scans = pa.table(
        {
            "patient_id": ids,
            "event_timestamp": pa.array(scanned, pa.timestamp("us", tz="UTC")),
            **{n: data.data[:, i].astype(np.float64) for i, n in enumerate(names)},
        }
    )
    diagnoses = pa.table(
        {
            "patient_id": ids,
            "event_timestamp": pa.array([DIAGNOSED_AT] * len(ids), pa.timestamp("us", tz="UTC")),
            LABEL: data.target.astype(np.int64),  # scikit-learn's coding: 1 = benign
        }
    )
    hub.ingest_features(SCANS, _parquet(scans), filename="scans.parquet")
    hub.ingest_features(DIAGNOSES, _parquet(diagnoses), filename="diagnoses.parquet")
    return scans.num_rows, diagnoses.num_rows


def job_spec(model: str, *, max_regression: float = 0.01, **params: object) -> JobSpec:
    """The built-in classifier on scans → diagnosis: accuracy at least 0.9 on the held-out
    rows, and at most ``max_regression`` below production's on the same rows."""
    return JobSpec(
        model=model,
        features=[SCANS],
        label_view=DIAGNOSES,
        label=LABEL,
        trainer="tabular-classification",
        params={
            "epochs": 60,
            "hidden": [32, 16],
            "batch_size": 64,
            "learning_rate": 0.01,
            "test_fraction": TEST_FRACTION,
            **params,
        },
        gate=GateSpec(thresholds={"accuracy": 0.9}, max_regression={"accuracy": max_regression}),
    )


def held_out(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The rows a job with this seed holds out (the worker's split), and their labels.

    The worker's label events come ordered by time, then patient id: the data's own order.
    """
    # lazy: scikit-learn takes 1.1 s; only the demo's data needs it
    from sklearn.datasets import load_breast_cancer

    from hub.training.evaluation import split  # lazy: the hub extra, absent on agent boxes

    data = load_breast_cancer()
    _, test = split(data.target, TEST_FRACTION, seed, stratify=True)
    return data.data[test].astype(np.float32), data.target[test].astype(np.int64)
