"""OpenVINO implementation of :class:`~agent.runtime.base.ModelRuntime`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from appliance.bundle.manifest import IR_XML_FILE, Manifest
from appliance.errors import ModelLoadError


class OpenVINOModel:
    kind = "openvino"

    def __init__(self, folder: Path, manifest: Manifest, threads: int) -> None:
        import openvino as ov

        try:
            core = ov.Core()
            # f32 on every CPU: on bf16-capable ones (AVX512_BF16, AMX) OpenVINO would pick
            # bf16 by itself, and answers would drift from the tested ONNX model's (~1e-2)
            config: dict[str, Any] = {
                "PERFORMANCE_HINT": "LATENCY",
                "INFERENCE_PRECISION_HINT": "f32",
            }
            if threads > 0:
                config["INFERENCE_NUM_THREADS"] = threads
            self._compiled = core.compile_model(str(folder / IR_XML_FILE), "CPU", config)
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise ModelLoadError(f"OpenVINO could not load {manifest.name}: {exc}") from exc
        self._output_names = [o.name for o in manifest.outputs]
        self._local = threading.local()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:  # an infer request is not thread-safe: one per thread
            request = self._local.request = self._compiled.create_infer_request()
        results = request.infer(inputs)
        by_name = {port.any_name: value for port, value in results.items()}
        return {name: np.asarray(by_name[name]) for name in self._output_names}
