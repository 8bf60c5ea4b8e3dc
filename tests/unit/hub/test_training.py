"""The built-in trainer: a real model on real data, with its lineage."""

from __future__ import annotations

import io

import numpy as np
import onnxruntime as ort
import pytest

from hub.training.tabular import TabularParams, train_tabular


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_trainer_learns_and_exports_a_model_that_agrees_with_itself(precision):
    result = train_tabular(TabularParams(epochs=30, precision=precision))
    assert result.metrics["accuracy"] > 0.9
    assert result.lineage["hyperparameters"]["precision"] == precision
    assert len(result.lineage["dataset_sha256"]) == 64
    session = ort.InferenceSession(result.onnx_bytes, providers=["CPUExecutionProvider"])
    probs = session.run(None, {"input": result.test_features})[0]
    assert probs.shape == (len(result.test_labels), 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float((probs.argmax(axis=1) == result.test_labels).mean())
    assert accuracy == pytest.approx(result.metrics["accuracy"], abs=0.01)
    reference = np.load(io.BytesIO(result.reference_npy))
    assert reference.shape[1] == result.test_features.shape[1]


def test_same_seed_same_model():
    first = train_tabular(TabularParams(epochs=5, seed=3))
    second = train_tabular(TabularParams(epochs=5, seed=3))
    assert first.metrics["log_loss"] == second.metrics["log_loss"]
