"""Held-out splits, metrics and the evaluation gate a trained model must pass.

The gate compares the candidate with the production version **on the same
held-out rows**, both run through ONNX Runtime, so the comparison is of what
agents would actually serve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from appliance.wire.training import HIGHER_IS_BETTER, GateSpec

Task = Literal["classification", "regression"]
PRIMARY_METRIC: dict[Task, str] = {"classification": "accuracy", "regression": "r2"}
DEFAULT_MAX_REGRESSION: dict[Task, dict[str, float]] = {
    "classification": {"accuracy": 0.01},
    "regression": {"r2": 0.01},
}
EPS = 1e-7


def split(
    labels: np.ndarray, fraction: float, seed: int, *, stratify: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out row indices, reproducible from ``seed`` (stratified by class)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, not {fraction}")
    rng = np.random.default_rng(seed)
    groups = (
        [np.flatnonzero(labels == c) for c in np.unique(labels)]
        if stratify
        else [np.arange(len(labels))]
    )
    train_idx: list[int] = []
    test_idx: list[int] = []
    for idx in groups:
        idx = idx.copy()
        rng.shuffle(idx)
        cut = round(len(idx) * fraction)
        test_idx.extend(idx[:cut].tolist())
        train_idx.extend(idx[cut:].tolist())
    return np.sort(np.array(train_idx, dtype=np.int64)), np.sort(np.array(test_idx, dtype=np.int64))


def classification_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    rows = np.arange(len(labels))
    picked = np.clip(probabilities[rows, labels], EPS, 1.0)
    return {
        "accuracy": float((probabilities.argmax(axis=1) == labels).mean()),
        "log_loss": float(-np.log(picked).mean()),
    }


def regression_metrics(predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    errors = predictions.reshape(-1).astype(np.float64) - targets.astype(np.float64)
    spread = float(((targets - targets.mean()) ** 2).sum())
    return {
        "rmse": float(np.sqrt((errors**2).mean())),
        "mae": float(np.abs(errors).mean()),
        "r2": 1.0 - float((errors**2).sum()) / spread if spread > 0 else 0.0,
    }


def metrics_for(task: Task, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    if task == "classification":
        return classification_metrics(outputs, labels)
    return regression_metrics(outputs, labels)


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    """Why it failed (empty when it passed)."""
    compared_with: int | None = None
    """The production version compared against, if any."""

    @property
    def summary(self) -> str:
        against = f" against production v{self.compared_with}" if self.compared_with else ""
        if self.passed:
            return f"passed the evaluation gate{against}"
        return f"rejected by the evaluation gate{against}: " + "; ".join(self.reasons)


def _worse_by(metric: str, candidate: float, reference: float) -> float:
    """How much worse ``candidate`` is than ``reference`` (negative when better)."""
    return reference - candidate if metric in HIGHER_IS_BETTER else candidate - reference


def judge(
    task: Task,
    gate: GateSpec,
    candidate: dict[str, float],
    production: dict[str, float] | None,
    production_version: int | None,
) -> GateVerdict:
    """Thresholds always; the regression limits only when there is a production model."""
    reasons: list[str] = []
    for metric, bound in sorted(gate.thresholds.items()):
        value = candidate.get(metric)
        if value is None:
            reasons.append(f"{metric} is not measured for {task}")
        elif _worse_by(metric, value, bound) > 0:
            better = "at least" if metric in HIGHER_IS_BETTER else "at most"
            reasons.append(f"{metric} {value:.4g} is not {better} {bound:.4g}")
    limits = DEFAULT_MAX_REGRESSION[task] if gate.max_regression is None else gate.max_regression
    if production is not None:
        for metric, allowed in sorted(limits.items()):
            if metric not in candidate or metric not in production:
                continue
            worse = _worse_by(metric, candidate[metric], production[metric])
            if worse > allowed:
                reasons.append(
                    f"{metric} {candidate[metric]:.4g} is {worse:.4g} worse than production "
                    f"v{production_version}'s {production[metric]:.4g} (allowed {allowed:.4g})"
                )
    return GateVerdict(not reasons, reasons, production_version if production else None)
