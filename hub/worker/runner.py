"""One training job on a worker, start to finish.

1. fetch the job's point-in-time training set from the hub (Parquet);
2. split off the held-out rows (seeded; stratified for classification);
3. train with the job's trainer, reporting progress, stopping when cancelled;
4. export ONNX, score the held-out rows with ONNX Runtime (what agents serve),
   and check OpenVINO reads the model the same;
5. score the production version (its signed bundle, verified here) on the same rows;
6. judge the gate and send the result: a passed model becomes a candidate version.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow.parquet as pq

from appliance.bundle.format import unpack, verify_bundle
from appliance.bundle.manifest import ONNX_FILE
from appliance.client.hub import HubClient
from appliance.errors import BundleError, InvalidInputError
from appliance.security.keys import load_public_key
from appliance.wire.features import SnapshotRef
from appliance.wire.training import JobInfo, JobSpec
from hub.training import export
from hub.training.evaluation import GateVerdict, Task, judge, metrics_for, split
from hub.training.mlp import Stopped
from hub.training.tabular import REFERENCE_ROWS, code_version
from hub.worker.context import TrainContext
from hub.worker.dataset import Arrays, to_arrays
from hub.worker.progress import Progress
from hub.worker.trainers import BUILTIN, resolve

DEFAULT_TEST_FRACTION = 0.2
MAX_BASELINE_BYTES = 4 << 30
OPENVINO_TOLERANCE = 1e-3


@dataclass
class Outcome:
    verdict: str
    metrics: dict[str, float]
    lineage: dict[str, Any]
    onnx_bytes: bytes | None
    reference_npy: bytes | None
    summary: str
    notes: list[str] = field(default_factory=list)


def _check_outputs(task: Task, outputs: np.ndarray, arrays: Arrays) -> np.ndarray:
    if task == "classification":
        if outputs.ndim != 2 or outputs.shape[1] != len(arrays.classes):
            raise InvalidInputError(
                f"the trained model answers shape {list(outputs.shape)}; a classifier of "
                f"{len(arrays.classes)} classes must answer [rows, {len(arrays.classes)}]"
            )
        return outputs
    if outputs.size != outputs.shape[0]:
        raise InvalidInputError(
            f"the trained model answers shape {list(outputs.shape)}; a regressor must "
            "answer one value per row"
        )
    return outputs.reshape(-1)


def _export(trained: Any, task: Task, x_train: np.ndarray) -> bytes:
    output = export.PROBABILITIES if task == "classification" else export.PREDICTION
    try:
        return export.export_onnx(trained, x_train.shape[1], output)
    except Exception as exc:  # the exporter raises many types; all mean the same here
        raise InvalidInputError(
            f"the trained model could not be exported to ONNX: {first_line(exc)}",
            hint="keep weights in parameters or buffers of the module (not captured tensors), "
            "or have the trainer return ONNX bytes",
        ) from exc


def first_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's first line, cut to ``limit`` characters (some carry whole tensors)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _baseline(
    hub: HubClient, job: JobInfo, x_test: np.ndarray, work: Path
) -> tuple[int | None, np.ndarray | None, str]:
    """The production version's outputs on the held-out rows, or why there are none."""
    tar = work / "baseline.tar"
    version = hub.training_baseline(job.id, tar, max_bytes=MAX_BASELINE_BYTES)
    if version is None:
        return None, None, f"{job.model} has no production version: thresholds only"
    folder = work / "baseline"
    folder.mkdir()
    pem = work / "signing.pub"
    pem.write_bytes(hub.signing_key_pem())
    try:
        unpack(tar, folder, max_bytes=MAX_BASELINE_BYTES)
        verify_bundle(folder, [load_public_key(pem)])
    except BundleError as exc:
        raise InvalidInputError(f"the production bundle v{version} did not verify: {exc}") from exc
    onnx_bytes = (folder / ONNX_FILE).read_bytes()
    try:
        return version, export.onnx_predict(onnx_bytes, x_test), ""
    except Exception as exc:  # onnxruntime raises its own types for a shape mismatch
        return (
            version,
            None,
            f"production v{version} cannot score these rows ({first_line(exc)}); thresholds only",
        )


@dataclass
class _TrainingSet:
    """The job's rows from the hub, split into training and held-out rows."""

    parquet: bytes
    snapshots: list[SnapshotRef]
    arrays: Arrays
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def run_job(
    hub: HubClient,
    job: JobInfo,
    worker: str,
    device: str,
    progress: Progress,
    processes: int = 1,
) -> Outcome:
    """``processes`` above 1 trains a built-in trainer under torchrun (DDP); a user's
    trainer always runs in this process, so its lineage says 1."""
    spec = msgspec.convert(job.spec, JobSpec)
    task, trainer = resolve(spec.trainer)
    if spec.trainer not in BUILTIN:
        processes = 1
    rows = _training_set(hub, job, spec, task, progress)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="appliance-train-") as train_dir:
        ctx = TrainContext(
            features=rows.x_train,
            labels=rows.y_train,
            feature_names=rows.arrays.feature_names,
            task=task,
            classes=rows.arrays.classes,
            params=spec.params,
            device=device,
            report=lambda f, m: progress.update(0.05 + 0.85 * f, m),
            stop=progress.stop,
            processes=processes,
            work_dir=Path(train_dir),
        )
        trained = trainer(ctx)
    train_seconds = time.perf_counter() - started
    if progress.stop.is_set():
        raise Stopped("stopped after training")
    onnx_bytes = trained if isinstance(trained, bytes) else _export(trained, task, rows.x_train)
    progress.update(0.92, "evaluating on the held-out rows")
    metrics, notes, verdict = _evaluate(hub, job, spec, task, rows, onnx_bytes)
    metrics.update(
        {
            "train_rows": float(len(rows.y_train)),
            "test_rows": float(len(rows.y_test)),
            "train_seconds": train_seconds,
        }
    )
    for note in notes:
        progress.log(note)
    progress.log(verdict.summary)
    reference = io.BytesIO()
    np.save(reference, rows.x_train[:REFERENCE_ROWS], allow_pickle=False)
    hyperparameters = {**spec.params, "device": device, "processes": processes}
    return Outcome(
        verdict="passed" if verdict.passed else "rejected",
        metrics=metrics,
        lineage={
            "trainer": spec.trainer,
            "code_version": code_version(),
            "hyperparameters": hyperparameters,
            **_data_lineage(job, spec, rows),
            "worker": worker,
            "device": device_name(device),
            "gate": {
                "passed": verdict.passed,
                "summary": verdict.summary,
                "reasons": verdict.reasons,
                "compared_with": verdict.compared_with,
                "notes": notes,
            },
        },
        onnx_bytes=onnx_bytes if verdict.passed else None,
        reference_npy=reference.getvalue() if verdict.passed else None,
        summary=verdict.summary,
        notes=notes,
    )


def _training_set(
    hub: HubClient, job: JobInfo, spec: JobSpec, task: Task, progress: Progress
) -> _TrainingSet:
    """The job's point-in-time rows from the hub, split (seeded; stratified for
    classification) into training and held-out rows."""
    progress.update(0.0, "reading the training set from the hub")
    parquet, snapshots = hub.training_dataset(job.id)
    table = pq.read_table(io.BytesIO(parquet))
    arrays = to_arrays(table, spec.features, spec.label, task)
    progress.log(
        f"training set: {table.num_rows} label events, {len(arrays.feature_names)} features, "
        f"{arrays.dropped} events without every feature left out"
    )
    fraction = float(spec.params.get("test_fraction", DEFAULT_TEST_FRACTION))
    seed = int(spec.params.get("seed", 0))
    train_idx, test_idx = split(arrays.labels, fraction, seed, stratify=task == "classification")
    return _TrainingSet(
        parquet,
        snapshots,
        arrays,
        arrays.features[train_idx],
        arrays.labels[train_idx],
        arrays.features[test_idx],
        arrays.labels[test_idx],
    )


def _evaluate(
    hub: HubClient, job: JobInfo, spec: JobSpec, task: Task, rows: _TrainingSet, onnx: bytes
) -> tuple[dict[str, float], list[str], GateVerdict]:
    """The model's metrics on the held-out rows (ONNX Runtime, and OpenVINO's agreement),
    production's on the same rows, the notes on either, and the gate's verdict."""
    outputs = _check_outputs(task, export.onnx_predict(onnx, rows.x_test), rows.arrays)
    metrics = metrics_for(task, outputs, rows.y_test)
    notes: list[str] = []
    ov_diff = export.openvino_max_abs_diff(onnx, rows.x_test)
    if ov_diff is not None:
        metrics["openvino_max_abs_diff"] = ov_diff
        if ov_diff > OPENVINO_TOLERANCE:
            notes.append(f"OpenVINO answers differ from ONNX Runtime by up to {ov_diff:.3g}")
    with tempfile.TemporaryDirectory(prefix="appliance-job-") as tmp:
        version, baseline_out, why = _baseline(hub, job, rows.x_test, Path(tmp))
    production = None
    if baseline_out is not None:
        production = metrics_for(task, _check_outputs(task, baseline_out, rows.arrays), rows.y_test)
        metrics.update({f"production_{k}": v for k, v in production.items()})
    if why:
        notes.append(why)
    return metrics, notes, judge(task, spec.gate, metrics, production, version)


def _data_lineage(job: JobInfo, spec: JobSpec, rows: _TrainingSet) -> dict[str, Any]:
    """What the model learnt from: the exact training set and the feature snapshots."""
    return {
        "dataset": f"training-job:{job.id}",
        "dataset_sha256": hashlib.sha256(rows.parquet).hexdigest(),
        "training_job": job.id,
        "feature_views": list(spec.features),
        "label_view": spec.label_view,
        "snapshots": [s.snapshot_sha256 for s in rows.snapshots],
        "classes": rows.arrays.classes,
    }


def device_name(device: str) -> str:
    if not device.startswith("cuda"):
        return "cpu"
    import torch  # lazy: torch takes 1 s; only a CUDA device's name needs it

    return torch.cuda.get_device_name(torch.device(device))
