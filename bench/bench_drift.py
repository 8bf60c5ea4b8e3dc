"""Drift on the device: the cost of one test, and what watching adds to an inference call.

1. **One drift test**: a window of 1,000 rows by 10 features against a 5,000-row
   reference sample, for each detector the agent may pick (K-S for continuous
   features, chi-square for categorical, tabular for mixed). Median of repeats.
2. **Overhead per inference call**: the agent's in-process infer operation
   (decode, ONNX Runtime, encode) on a 10-feature model, plain vs with the
   drift window recording, the Prometheus counters and a running A/B
   experiment (sticky cohort assignment from the subject id, request id kept
   for feedback), interleaved in the same process; p50 of each and the
   difference (target: under 50 µs at p50).

Run: ``python bench/bench_drift.py [--calls 20000]``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from agent.app import inference
from agent.drift.detectors import new_detector
from agent.drift.monitor import DriftMonitor, DriftSettings
from agent.experiments import ExperimentRouter
from agent.metrics import AgentMetrics, StateSources
from agent.outbox import Outbox
from agent.repository import LoadedModel, ModelRepository
from agent.runtime import load_runtime
from appliance.bundle.manifest import Lineage
from appliance.security.keys import init_keypair
from appliance.settings import DRIFT_BACKENDS
from appliance.trust.layout import ExperimentSpec, VariantSpec
from hub.registry import bundler

FEATURES = 10


def detector_cost(repeats: int) -> None:
    rng = np.random.default_rng(0)
    continuous = rng.standard_normal((5000, FEATURES)).astype(np.float32)
    categorical = rng.integers(0, 5, (5000, FEATURES)).astype(np.float32)
    mixed = np.hstack([continuous[:, :5], categorical[:, :5]])
    print(f"== one drift test: 1,000 x {FEATURES} window vs 5,000 reference rows ==")
    cases = (("continuous", continuous), ("categorical", categorical), ("mixed", mixed))
    for backend in DRIFT_BACKENDS:
        for label, reference in cases:
            detector = new_detector(reference, backend=backend)
            window = reference[rng.choice(len(reference), 1000)]
            detector.test(window)  # warm
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                detector.test(window)
                times.append(time.perf_counter() - started)
            median = statistics.median(times) * 1e3
            print(f"  {backend:<6} {label:<12} {detector.method:<8} median {median:6.2f} ms")


def tiny_model(folder: Path) -> LoadedModel:
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((FEATURES, 2)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    reference = rng.standard_normal((500, FEATURES)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, reference)
    prepared = bundler.prepare(folder, model.SerializeToString(), buffer.getvalue())
    manifest = bundler.seal(
        prepared,
        name="bench",
        version=1,
        metrics={},
        lineage=Lineage(),
        key=init_keypair(folder.parent / "keys"),
    )
    runtime = load_runtime(folder, manifest, "onnxruntime", 1)
    return LoadedModel(manifest=manifest, runtime=runtime, folder=folder, reference=reference)


def per_call(fn: Callable[[], object], calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - started) / 1e3)
    return samples


def call_overhead(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bundle"
        folder.mkdir()
        model = tiny_model(folder)
        repository = ModelRepository()
        repository.swap(model)
        outbox = Outbox(Path(tmp) / "agent")
        drift = DriftMonitor(outbox, DriftSettings(every_requests=10**9, interval_s=10**9))
        drift.watch([model])
        metrics = AgentMetrics(StateSources(repository, outbox, drift, lambda: True))
        router = ExperimentRouter()
        router.update(  # both variants on the same loaded version: only routing is measured
            {
                "bench-ab": ExperimentSpec(
                    model="bench",
                    salt="bench-salt",
                    variants=[
                        VariantSpec(name="control", version=1, weight=0.5),
                        VariantSpec(name="candidate", version=1, weight=0.5),
                    ],
                )
            }
        )
        plain = inference(repository)
        watched = inference(repository, metrics, drift, router)
        body = json.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "shape": [1, FEATURES],
                        "datatype": "FP32",
                        "data": [0.5] * FEATURES,
                    }
                ]
            }
        ).encode()
        per_call(lambda: plain("bench", None, body, None, None), 2000)  # warm both
        per_call(lambda: watched("bench", None, body, "subject-42", None), 2000)
        rounds = 10
        plain_all: list[float] = []
        watched_all: list[float] = []
        for _ in range(rounds):  # interleaved, so drift in the machine hits both alike
            plain_all += per_call(lambda: plain("bench", None, body, None, None), calls // rounds)
            watched_all += per_call(
                lambda: watched("bench", None, body, "subject-42", None), calls // rounds
            )
        p50_plain, p50_watched = statistics.median(plain_all), statistics.median(watched_all)
        print(f"\n== one inference call in process, {calls} calls each ==")
        print(f"  plain                      p50 {p50_plain:7.1f} µs")
        print(f"  + drift, metrics, A/B     p50 {p50_watched:7.1f} µs")
        print(
            f"  overhead at p50: {p50_watched - p50_plain:.1f} µs (target < 50 µs); "
            f"ratio {p50_watched / p50_plain:.2f}"
        )
        outbox.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    detector_cost(args.repeats)
    call_overhead(args.calls)


if __name__ == "__main__":
    main()
