"""OpenVINO implementation of :class:`~agent.runtime.base.ModelRuntime`."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from appliance.bundle.manifest import Manifest
from appliance.bundle.openvino_ir import compile_ir, run_ir
from appliance.errors import ModelLoadError


class OpenVINOModel:
    kind = "openvino"

    def __init__(self, folder: Path, manifest: Manifest, threads: int) -> None:
        try:
            self._compiled = compile_ir(folder, threads)
        except Exception as exc:  # OpenVINO raises untyped RuntimeErrors
            raise ModelLoadError(f"OpenVINO could not load {manifest.name}: {exc}") from exc
        self._output_names = [o.name for o in manifest.outputs]
        self._local = threading.local()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = getattr(self._local, "request", None)
        if request is None:  # an infer request is not thread-safe: one per thread
            request = self._local.request = self._compiled.create_infer_request()
        return run_ir(request, inputs, self._output_names)
