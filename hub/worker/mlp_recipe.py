"""The built-in MLP's recipe: its parameters, how it is built and what it learns, shared
by the one-process trainer (:mod:`hub.worker.trainers`) and the distributed ranks
(:mod:`hub.worker.ddp`) so both train alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from appliance.errors import InvalidInputError
from hub.worker.context import TrainContext


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
    import torch  # lazy: torch takes 1 s; only training needs it

    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def build_mlp(ctx: TrainContext, params: MlpParams) -> Any:
    """The untrained module for ``ctx``: standardisation inside, softmax or rescaling out."""
    from hub.training.mlp import Rescaled, StandardisedMLP, WithSoftmax  # lazy: imports torch

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
