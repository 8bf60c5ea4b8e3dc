"""A site's own trainer, as a user would write one (see docs/training.md): logistic regression.

Named in a job as ``tests.integration.site_trainer:logistic``; the worker imports it.
"""

from __future__ import annotations

from typing import Any

from hub.training.mlp import Stopped
from hub.worker.context import TrainContext


def logistic(ctx: TrainContext) -> Any:
    import torch

    torch.manual_seed(int(ctx.params.get("seed", 0)))
    x = torch.as_tensor(ctx.features)
    y = torch.as_tensor(ctx.labels)
    mean, std = x.mean(0), x.std(0) + 1e-6
    linear = torch.nn.Linear(x.shape[1], len(ctx.classes))
    optimiser = torch.optim.LBFGS(linear.parameters(), max_iter=20)
    steps = int(ctx.params.get("steps", 10))
    for step in range(steps):
        if ctx.stop.is_set():
            raise Stopped(f"stopped at step {step}")

        def closure() -> Any:
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(linear((x - mean) / std), y)
            loss.backward()
            return loss

        optimiser.step(closure)
        ctx.report((step + 1) / steps, f"step {step + 1}/{steps}")

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = linear
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)

        def forward(self, rows: Any) -> Any:
            return torch.softmax(self.linear((rows - self.mean) / self.std), dim=1)

    return Model().eval().requires_grad_(False)


logistic.task = "classification"  # type: ignore[attr-defined]
