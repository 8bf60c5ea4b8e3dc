"""GPU readings through NVIDIA's management library (nvidia-ml-py), or "no GPU".

A machine without the NVIDIA driver (or without the package) reports
``note="no GPU"`` and empty readings; nothing here raises for that.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from appliance.wire.training import GpuSample, Telemetry

log = logging.getLogger(__name__)
NO_GPU = "no GPU"


class GpuTelemetry:
    def __init__(self) -> None:
        self._nvml: Any = None
        self._handles: list[Any] = []
        self.note = ""
        try:
            import pynvml  # lazy: nvidia-ml-py: absent or without a driver on CPU boxes

            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self._nvml = pynvml
            self.note = "" if count else NO_GPU
        except Exception as exc:  # ImportError, or NVMLError when there is no driver
            log.info("GPU telemetry off: %s", exc)
            self.note = NO_GPU

    @property
    def count(self) -> int:
        return len(self._handles)

    def sample(self) -> Telemetry:
        if self._nvml is None or not self._handles:
            return Telemetry(note=self.note or NO_GPU)
        nvml = self._nvml
        samples: list[GpuSample] = []
        for index, handle in enumerate(self._handles):
            try:
                util = nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                name = nvml.nvmlDeviceGetName(handle)
                samples.append(
                    GpuSample(
                        index=index,
                        name=name.decode() if isinstance(name, bytes) else str(name),
                        utilization_pct=float(util.gpu),
                        memory_used_mib=memory.used / 2**20,
                        memory_total_mib=memory.total / 2**20,
                        temperature_c=float(
                            nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                        ),
                        power_w=nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
                    )
                )
            except Exception as exc:  # one GPU gone bad must not stop the heartbeat
                log.warning("reading GPU %d failed: %s", index, exc)
        return Telemetry(gpus=samples, note="" if samples else "GPU readings failed")

    def close(self) -> None:
        if self._nvml is not None:
            with contextlib.suppress(Exception):
                self._nvml.nvmlShutdown()
            self._nvml = None
