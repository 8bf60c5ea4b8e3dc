"""ONNX Runtime implementation of :class:`~agent.runtime.base.ModelRuntime`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from agent.runtime.providers import CPU
from appliance.bundle.manifest import ONNX_FILE, Manifest
from appliance.errors import ModelLoadError


class OnnxRuntimeModel:
    kind = "onnxruntime"

    def __init__(self, folder: Path, manifest: Manifest, threads: int, provider: str = CPU) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(folder / ONNX_FILE),
                sess_options=options,
                providers=[provider] if provider == CPU else [provider, CPU],
            )
        except Exception as exc:  # ORT raises untyped errors
            raise ModelLoadError(f"ONNX Runtime could not load {manifest.name}: {exc}") from exc
        if provider not in self._session.get_providers():  # ORT falls back without a word
            raise ModelLoadError(f"ONNX Runtime could not use {provider} for {manifest.name}")
        self.provider = provider
        self._output_names = [o.name for o in manifest.outputs]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._session.run(self._output_names, inputs)
        return dict(zip(self._output_names, results, strict=True))
