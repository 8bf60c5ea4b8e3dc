"""ONNX Runtime's execution providers on GPU hosts.

With ``--runtime auto`` an agent whose ONNX Runtime is the GPU build and sees an NVIDIA
GPU tries TensorRT, then CUDA, before OpenVINO and the CPU: a provider serves a model only
once the model's test vectors pass on it at the bundle's tolerance, and one that cannot
load the model or answers differently is passed over with the reason in the log. The
CPU build lists neither, and nothing changes.
"""

from __future__ import annotations

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
"""In order of preference."""
CPU = "CPUExecutionProvider"


def gpu_providers(available: list[str] | None = None) -> list[str]:
    """The GPU providers this ONNX Runtime offers, best first."""
    if available is None:
        import onnxruntime as ort  # lazy: onnxruntime: only where a GPU is looked for

        available = list(ort.get_available_providers())
    return [p for p in GPU_PROVIDERS if p in available]


def short_name(provider: str) -> str:
    """``CUDAExecutionProvider`` as logs and status show it: ``cuda``."""
    return provider.removesuffix("ExecutionProvider").lower()
