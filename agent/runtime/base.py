"""The runtime interface and the choice between implementations."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np

from appliance.bundle.manifest import Manifest
from appliance.errors import ModelLoadError
from appliance.settings import RuntimeChoice


class ModelRuntime(Protocol):
    """A loaded model that maps named input arrays to named output arrays."""

    kind: str
    """``onnxruntime`` or ``openvino``."""

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


@cache
def is_intel_cpu() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("vendor_id"):
                    return "GenuineIntel" in line
    except OSError:
        pass
    return False


def pick_runtime(choice: RuntimeChoice, manifest: Manifest) -> RuntimeChoice:
    """``auto`` takes OpenVINO when the bundle has IR and the CPU is Intel's."""
    if choice == "openvino" and not manifest.has_openvino_ir:
        raise ModelLoadError(
            f"{manifest.name} v{manifest.version} has no OpenVINO IR",
            hint="run with --runtime onnxruntime or auto",
        )
    if choice == "auto":
        return "openvino" if manifest.has_openvino_ir and is_intel_cpu() else "onnxruntime"
    return choice


def load_runtime(
    folder: Path, manifest: Manifest, choice: RuntimeChoice, threads: int
) -> ModelRuntime:
    kind = pick_runtime(choice, manifest)
    if kind == "openvino":
        # lazy: each runtime loads only where a model asks for it
        from agent.runtime.openvino import OpenVINOModel

        return OpenVINOModel(folder, manifest, threads)
    # lazy: each runtime loads only where a model asks for it
    from agent.runtime.onnx import OnnxRuntimeModel

    return OnnxRuntimeModel(folder, manifest, threads)
