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
from pathlib import Path
from typing import Any, cast

from appliance.errors import InvalidInputError
from hub.training.evaluation import Task
from hub.worker.context import TrainContext, Trainer
from hub.worker.mlp_recipe import (
    MlpParams,
    build_mlp,
    fit_options,
    fit_targets,
    resolved_precision,
    trainable,
)


def train_mlp(ctx: TrainContext) -> Any:
    """The built-in trainers: an MLP with AdamW, standardised inputs (and regression targets).

    With ``ctx.processes`` above 1 the same training runs under torchrun (DDP).
    """
    if ctx.processes > 1:
        from hub.worker.ddp import train_mlp_distributed  # lazy: torch.distributed: only when asked

        if ctx.work_dir is not None:
            return train_mlp_distributed(ctx, ctx.processes, ctx.work_dir)
        with tempfile.TemporaryDirectory(prefix="appliance-ddp-") as tmp:
            return train_mlp_distributed(ctx, ctx.processes, Path(tmp))

    import torch  # lazy: torch takes 1 s; only training needs it

    from hub.training.mlp import fit  # lazy: imports torch

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
