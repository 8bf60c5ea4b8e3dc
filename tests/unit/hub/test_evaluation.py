"""The evaluation gate, held-out splits and the arrays a worker builds from a training set."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from appliance.errors import InvalidInputError
from appliance.wire.training import GateSpec
from hub.training.evaluation import judge, metrics_for, split
from hub.worker.dataset import to_arrays
from hub.worker.trainers import resolve


def test_split_is_stratified_reproducible_and_disjoint() -> None:
    labels = np.array([0] * 80 + [1] * 20)
    train, test = split(labels, 0.25, seed=7, stratify=True)
    again = split(labels, 0.25, seed=7, stratify=True)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not set(train) & set(test) and len(train) + len(test) == 100
    assert (labels[test] == 1).sum() == 5  # a quarter of each class
    with pytest.raises(ValueError):
        split(labels, 1.0, seed=0, stratify=False)


def test_metrics_for_both_tasks() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    scores = metrics_for("classification", probs, np.array([0, 1, 1]))
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.8, 0.4])))
    reg = metrics_for("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))
    assert reg["mae"] == pytest.approx(1 / 3) and reg["rmse"] == pytest.approx(np.sqrt(1 / 3))
    assert reg["r2"] == pytest.approx(1 - 1 / (42 / 9))  # SSE 1 over SST 42/9


def test_the_gate_applies_thresholds_always_and_regression_limits_against_production() -> None:
    gate = GateSpec(thresholds={"accuracy": 0.9, "log_loss": 0.3})
    ok = judge("classification", gate, {"accuracy": 0.93, "log_loss": 0.2}, None, None)
    assert ok.passed and ok.summary == "passed the evaluation gate"
    low = judge("classification", gate, {"accuracy": 0.85, "log_loss": 0.4}, None, None)
    assert not low.passed
    assert low.reasons == [
        "accuracy 0.85 is not at least 0.9",
        "log_loss 0.4 is not at most 0.3",
    ]
    # the default allows accuracy 0.01 worse than production, on the same rows
    near = judge("classification", GateSpec(), {"accuracy": 0.935}, {"accuracy": 0.94}, 4)
    assert near.passed and near.summary.endswith("against production v4")
    worse = judge("classification", GateSpec(), {"accuracy": 0.90}, {"accuracy": 0.94}, 4)
    assert not worse.passed and "worse than production v4's 0.94" in worse.reasons[0]
    strict = GateSpec(max_regression={"rmse": 0.0})
    assert not judge("regression", strict, {"rmse": 1.1}, {"rmse": 1.0}, 2).passed
    assert judge("regression", strict, {"rmse": 0.9}, {"rmse": 1.0}, 2).passed


def _table(label: list[object], x: list[float | None], flag: list[bool]) -> pa.Table:
    n = len(label)
    return pa.table(
        {
            "id": list(range(n)),
            "event_timestamp": list(range(n)),
            "y": label,
            "scans__x": x,
            "scans__flag": flag,
            "other__z": [1.0] * n,  # a view the job did not ask for
        }
    )


def test_arrays_drop_rows_with_missing_features_and_encode_classes() -> None:
    labels = ["no", "yes"] * 6
    x = [float(i) for i in range(12)]
    x[3] = None  # type: ignore[call-overload]
    arrays = to_arrays(_table(labels, x, [True, False] * 6), ["scans:2"], "y", "classification")
    assert arrays.feature_names == ["scans__x", "scans__flag"]
    assert arrays.dropped == 1 and arrays.features.shape == (11, 2)
    assert arrays.features.dtype == np.float32 and arrays.features[0, 1] == 1.0
    assert arrays.classes == ["no", "yes"] and arrays.labels[:2].tolist() == [0, 1]


def test_arrays_refuse_strings_too_few_rows_and_a_single_class() -> None:
    table = _table([0, 1] * 6, [1.0] * 12, [True] * 12).append_column(
        "scans__name", pa.array(["a"] * 12)
    )
    with pytest.raises(InvalidInputError, match="scans__name is string"):
        to_arrays(table, ["scans"], "y", "classification")
    with pytest.raises(InvalidInputError, match="only 4 of 4"):
        to_arrays(_table([0, 1] * 2, [1.0] * 4, [True] * 4), ["scans"], "y", "classification")
    with pytest.raises(InvalidInputError, match="same value"):
        to_arrays(_table([1] * 12, [1.0] * 12, [True] * 12), ["scans"], "y", "classification")


def test_a_trainer_that_cannot_be_imported_says_how_to_fix_it() -> None:
    assert resolve("tabular-regression")[0] == "regression"
    with pytest.raises(InvalidInputError, match="cannot be loaded on this worker") as info:
        resolve("no_such_package.module:train")
    assert "PYTHONPATH" in (info.value.hint or "")
