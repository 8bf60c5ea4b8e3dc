"""Model runtimes behind one interface: ONNX Runtime and OpenVINO."""

from agent.runtime.base import ModelRuntime, load_runtime, pick_runtime

__all__ = ["ModelRuntime", "load_runtime", "pick_runtime"]
