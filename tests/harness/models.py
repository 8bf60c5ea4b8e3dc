"""Test models built in code: a tiny ONNX classifier and a reference sample for it."""

from __future__ import annotations

import io

import numpy as np


def make_tiny_onnx(n_features: int = 4, n_classes: int = 2) -> bytes:
    """A deterministic classifier: ``input`` FLOAT [batch, n_features] -> MatMul -> Softmax.

    The output is ``probabilities`` FLOAT [batch, n_classes]; opset 17. Built with
    ``onnx.helper`` only (no torch), so it is fast and identical on every run.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = (
        np.arange(n_features * n_classes, dtype=np.float32).reshape(n_features, n_classes) / 10.0
        - 0.3
    )
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "weights"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", n_classes])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="appliance-tests"
    )
    model.ir_version = 8  # readable by every onnxruntime/openvino we support
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def make_reference_npy(rows: int = 32, n_features: int = 4, *, seed: int = 0) -> bytes:
    """A ``.npy`` reference sample of shape [rows, n_features] (float32)."""
    sample = np.random.default_rng(seed).standard_normal((rows, n_features)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, sample, allow_pickle=False)
    return buffer.getvalue()
