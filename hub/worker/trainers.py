"""Trainers a worker can run: the built-in tabular MLPs and a user's own entry point.

A trainer is a function ``train(ctx: TrainContext) -> torch.nn.Module | bytes``.
It gets the **training rows only** (the worker keeps the held-out split for the
gate), and returns either a module or ONNX bytes that map raw feature rows
(FP32 ``[-1, n_features]``) to class probabilities (``[-1, n_classes]``, in the
order of ``ctx.classes``) for classification, or to predictions (``[-1, 1]``)
for regression. It should call ``ctx.report(fraction, message)`` now and then
(that is what the job shows) and look at ``ctx.stop`` between steps: when set,
the job was cancelled; raise :class:`hub.training.mlp.Stopped` (or return).

A user's trainer is named ``package.module:function`` in the job and must be
importable on the worker (installed in its environment or on ``PYTHONPATH``).
"""

from __future__ import annotations

import importlib
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from appliance.errors import InvalidInputError
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


@dataclass(frozen=True)
class MlpParams:
    hidden: tuple[int, ...] = (64, 32)
    epochs: int = 30
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    seed: int = 0
    precision: str = "auto"
    """``auto``: bf16 on a GPU that supports it, fp32 elsewhere; or ``fp32`` / ``bf16``."""

    @classmethod
    def parse(cls, params: dict[str, Any]) -> MlpParams:
        known = {k: v for k, v in params.items() if k in cls.__dataclass_fields__}
        try:
            parsed = cls(**{**known, "hidden": tuple(known.get("hidden", cls.hidden))})
        except TypeError as exc:
            raise InvalidInputError(f"params: {exc}") from exc
        if parsed.epochs < 1 or parsed.batch_size < 1 or not parsed.hidden:
            raise InvalidInputError("params: epochs, batch_size and hidden must be positive")
        if parsed.precision not in ("auto", "fp32", "bf16"):
            raise InvalidInputError("params.precision: auto, fp32 or bf16")
        return parsed


def resolved_precision(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    import torch

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def build_mlp(ctx: TrainContext, params: MlpParams) -> Any:
    """The untrained module for ``ctx``: standardisation inside, softmax or rescaling out."""
    from hub.training.mlp import Rescaled, StandardisedMLP, WithSoftmax

    mean, std = ctx.features.mean(axis=0), ctx.features.std(axis=0)
    if ctx.task == "classification":
        return WithSoftmax(StandardisedMLP(mean, std, params.hidden, len(ctx.classes)))
    target_std = float(ctx.labels.std()) or 1.0
    return Rescaled(
        StandardisedMLP(mean, std, params.hidden, 1), float(ctx.labels.mean()), target_std
    )


def trainable(module: Any) -> Any:
    """The part of a built-in module that is trained (softmax and rescaling are for export)."""
    return module.inner


def fit_targets(ctx: TrainContext) -> np.ndarray:
    """What the trainable part learns: class indices, or targets standardised as
    :func:`build_mlp`'s rescaling undoes (one place, so every process agrees)."""
    if ctx.task == "classification":
        return ctx.labels
    standardised: np.ndarray = (ctx.labels - ctx.labels.mean()) / (float(ctx.labels.std()) or 1.0)
    return standardised


def fit_options(ctx: TrainContext, params: MlpParams) -> dict[str, Any]:
    """``fit``'s settings for ``ctx``, shared with the distributed ranks so both train alike."""
    return {
        "epochs": params.epochs,
        "batch_size": params.batch_size,
        "learning_rate": params.learning_rate,
        "weight_decay": params.weight_decay,
        "device": ctx.device,
        "precision": resolved_precision(params.precision, ctx.device),
        "loss": "cross_entropy" if ctx.task == "classification" else "mse",
    }


def train_mlp(ctx: TrainContext) -> Any:
    """The built-in trainers: an MLP with AdamW, standardised inputs (and regression targets).

    With ``ctx.processes`` above 1 the same training runs under torchrun (DDP).
    """
    if ctx.processes > 1:
        from hub.worker.ddp import train_mlp_distributed

        if ctx.work_dir is not None:
            return train_mlp_distributed(ctx, ctx.processes, ctx.work_dir)
        with tempfile.TemporaryDirectory(prefix="appliance-ddp-") as tmp:
            return train_mlp_distributed(ctx, ctx.processes, Path(tmp))

    import torch

    from hub.training.mlp import fit

    params = MlpParams.parse(ctx.params)
    torch.manual_seed(params.seed)
    module = build_mlp(ctx, params)
    targets = fit_targets(ctx)
    precision = resolved_precision(params.precision, ctx.device)
    ctx.report(0.0, f"training an MLP {list(params.hidden)} on {ctx.device} ({precision})")

    def on_epoch(epoch: int, loss: float) -> None:
        ctx.report(epoch / params.epochs, f"epoch {epoch}/{params.epochs}, loss {loss:.4f}")

    fit(
        trainable(module),
        ctx.features,
        targets,
        seed=params.seed,
        on_epoch=on_epoch,
        stop=ctx.stop,
        **fit_options(ctx, params),
    )
    return module.cpu()


BUILTIN: dict[str, tuple[Task, Trainer]] = {
    "tabular-classification": ("classification", train_mlp),
    "tabular-regression": ("regression", train_mlp),
}


def resolve(name: str) -> tuple[Task, Trainer]:
    """The task and function of a built-in trainer or of ``package.module:function``.

    A user's trainer declares its task with a ``task`` attribute on the function
    (``"classification"``, the default, or ``"regression"``).
    """
    if name in BUILTIN:
        return BUILTIN[name]
    module_name, _, attribute = name.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidInputError(
            f"trainer {name!r} cannot be loaded on this worker: {exc}",
            hint="install the package holding it in the worker's environment or put it on "
            "PYTHONPATH, then submit the job again",
        ) from exc
    task = getattr(function, "task", "classification")
    if task not in ("classification", "regression"):
        raise InvalidInputError(f"trainer {name!r}: task {task!r} is not known")
    return cast(Task, task), function
