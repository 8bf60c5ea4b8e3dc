"""A built-in tabular classifier: a PyTorch MLP with standardisation inside the graph.

The exported ONNX takes raw feature rows (``input``: FP32 ``[-1, n_features]``)
and returns class probabilities (``probabilities``: FP32 ``[-1, n_classes]``),
so clients never need to know the training set's means.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from appliance import __version__
from hub.training import export
from hub.training.datasets import DATASETS
from hub.training.evaluation import classification_metrics, split
from hub.training.export import export_onnx, onnx_predict

if TYPE_CHECKING:
    from hub.training.mlp import Precision

INPUT_NAME = export.INPUT_NAME
OUTPUT_NAME = export.PROBABILITIES
REFERENCE_ROWS = 500


@dataclass(frozen=True)
class TabularParams:
    """Hyper-parameters, recorded verbatim in the model's lineage."""

    dataset: str = "breast_cancer"
    hidden: tuple[int, ...] = (32, 16)
    epochs: int = 60
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4
    batch_size: int = 64
    test_fraction: float = 0.25
    seed: int = 0
    precision: Precision = "fp32"
    """``bf16`` trains under autocast on GPUs (and CPUs) that support it."""


@dataclass
class TrainingResult:
    onnx_bytes: bytes
    reference_npy: bytes
    metrics: dict[str, float]
    lineage: dict[str, Any]
    test_features: np.ndarray = field(repr=False)
    test_labels: np.ndarray = field(repr=False)


def code_version() -> str:
    """The package version, plus the git commit when running from a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}" if commit else __version__


def train_tabular(params: TabularParams, device: str = "cpu") -> TrainingResult:
    import torch  # lazy: torch takes 1 s; only training needs it

    from hub.training.mlp import StandardisedMLP, WithSoftmax, fit  # lazy: imports torch

    torch.manual_seed(params.seed)
    data = DATASETS[params.dataset]()
    train_idx, test_idx = split(data.labels, params.test_fraction, params.seed, stratify=True)
    x_train, y_train = data.features[train_idx], data.labels[train_idx]
    x_test, y_test = data.features[test_idx], data.labels[test_idx]
    n_features, n_classes = x_train.shape[1], int(data.labels.max()) + 1

    model = StandardisedMLP(x_train.mean(axis=0), x_train.std(axis=0), params.hidden, n_classes)
    stats = fit(
        model,
        x_train,
        y_train,
        epochs=params.epochs,
        batch_size=params.batch_size,
        learning_rate=params.learning_rate,
        weight_decay=params.weight_decay,
        seed=params.seed,
        device=device,
        precision=params.precision,
    )
    train_seconds = stats.seconds

    exported = WithSoftmax(model).eval().cpu()
    onnx_bytes = export_onnx(exported, n_features, OUTPUT_NAME)
    scores = classification_metrics(onnx_predict(onnx_bytes, x_test), y_test)
    reference = io.BytesIO()
    np.save(reference, x_train[:REFERENCE_ROWS], allow_pickle=False)
    return TrainingResult(
        onnx_bytes=onnx_bytes,
        reference_npy=reference.getvalue(),
        metrics={
            **scores,
            "test_rows": float(len(y_test)),
            "train_rows": float(len(y_train)),
            "train_seconds": train_seconds,
        },
        lineage={
            "trainer": "builtin.tabular_mlp",
            "dataset": data.name,
            "dataset_sha256": data.sha256,
            "code_version": code_version(),
            "hyperparameters": {**asdict(params), "hidden": list(params.hidden), "device": device},
        },
        test_features=x_test,
        test_labels=y_test,
    )
