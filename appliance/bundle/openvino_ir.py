"""OpenVINO IR as the hub checks it and agents run it: one way to compile and call it.

The hub converts each uploaded ONNX model to IR and runs the bundle's test vectors
through it, compiled exactly as agents compile it, so that a bundle only offers IR that
answers as ONNX Runtime does (:mod:`hub.registry.bundler`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from appliance.bundle.manifest import IR_XML_FILE, ONNX_FILE


def convert_onnx(folder: Path) -> None:
    """Convert ``folder``'s ONNX model to IR beside it; OpenVINO's own error when it cannot.

    OpenVINO's converter sets the root logger to ERROR (and adds a handler) and, when the
    conversion fails, does not put it back: every warning the process logged afterwards
    was lost. The root logger is restored here, whatever happens.
    """
    import openvino as ov  # lazy: openvino: the hub and agent extras, 0.15 s to import

    root = logging.getLogger()
    level, filters, handlers = root.level, list(root.filters), list(root.handlers)
    try:
        converted = ov.convert_model(str(folder / ONNX_FILE))
        ov.save_model(converted, str(folder / IR_XML_FILE), compress_to_fp16=False)
    finally:
        root.setLevel(level)
        root.filters, root.handlers = filters, handlers


def compile_ir(folder: Path, threads: int = 0) -> Any:
    """The IR in ``folder`` compiled for the CPU; OpenVINO's own error when it cannot be.

    f32 on every CPU: on bf16-capable ones (AVX512_BF16, AMX) OpenVINO would pick bf16 by
    itself, and answers would drift from the tested ONNX model's (~1e-2).
    """
    import openvino as ov  # lazy: openvino: the hub and agent extras, 0.15 s to import

    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    return ov.Core().compile_model(str(folder / IR_XML_FILE), "CPU", config)


def run_ir(request: Any, inputs: dict[str, np.ndarray], outputs: list[str]) -> dict[str, Any]:
    """One inference on an infer request (``compiled.create_infer_request()``)."""
    results = request.infer(inputs)
    by_name = {port.any_name: value for port, value in results.items()}
    return {name: np.asarray(by_name[name]) for name in outputs}
