"""Exporting a trained PyTorch module to ONNX (and checking OpenVINO reads it the same)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

INPUT_NAME = "input"
"""Every exported model takes raw feature rows: FP32 ``[-1, n_features]``."""
PROBABILITIES = "probabilities"
PREDICTION = "prediction"


def export_onnx(module: Any, n_features: int, output_name: str) -> bytes:
    """ONNX (opset 17) of ``module`` with a dynamic batch, via the TorchScript exporter."""
    import torch  # lazy: torch takes 1 s; only training needs it

    module = module.eval().cpu()
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        (torch.zeros(1, n_features),),
        buffer,  # type: ignore[arg-type]  # file-like objects are accepted
        input_names=[INPUT_NAME],
        output_names=[output_name],
        dynamic_axes={INPUT_NAME: {0: "batch"}, output_name: {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return buffer.getvalue()


def onnx_predict(onnx_bytes: bytes, features: np.ndarray) -> np.ndarray:
    """The model's first output for ``features`` under ONNX Runtime (what agents serve)."""
    import onnxruntime as ort  # lazy: onnxruntime takes 0.1 s; only evaluation needs it

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out = session.run(None, {name: np.ascontiguousarray(features, dtype=np.float32)})[0]
    return np.asarray(out)


def openvino_max_abs_diff(onnx_bytes: bytes, features: np.ndarray) -> float | None:
    """Largest difference between OpenVINO's and ONNX Runtime's outputs; None without OpenVINO."""
    try:
        import openvino as ov  # lazy: openvino takes 0.15 s; only evaluation needs it
    except ImportError:
        return None
    core = ov.Core()
    # f32, as agents run it: a bf16-capable CPU would otherwise pick bf16 by itself
    compiled = core.compile_model(
        core.read_model(onnx_bytes), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    rows = np.ascontiguousarray(features, dtype=np.float32)
    ir_out = np.asarray(compiled(rows)[compiled.output(0)])
    return float(np.max(np.abs(ir_out - onnx_predict(onnx_bytes, rows)))) if len(rows) else 0.0
