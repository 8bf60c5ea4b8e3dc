"""What a trainer is given: the training rows, the task, its settings, and how to report.

A trainer is a function ``train(ctx: TrainContext) -> torch.nn.Module | bytes``
(see :mod:`hub.worker.trainers`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hub.training.evaluation import Task

Trainer = Callable[["TrainContext"], Any]


@dataclass
class TrainContext:
    features: np.ndarray
    """FP32 ``[n, n_features]``: the training rows (the held-out rows are not here)."""
    labels: np.ndarray
    """Class indices (int64) for classification, FP32 targets for regression."""
    feature_names: list[str]
    task: Task
    classes: list[str]
    """Classification: the label values, in output order (empty for regression)."""
    params: dict[str, Any]
    device: str
    """``cuda`` or ``cpu``."""
    report: Callable[[float, str], None] = field(default=lambda _f, _m: None)
    stop: threading.Event = field(default_factory=threading.Event)
    processes: int = 1
    """Training processes for the built-in trainers (more than 1: torchrun with DDP)."""
    work_dir: Path | None = None
    """Scratch folder for the distributed run's files (a temporary one when None)."""
