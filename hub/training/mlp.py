"""The MLP and its training loop, shared by the built-in trainer, workers and the benchmark.

The loop keeps the whole training set on the device and draws each epoch's
order there, so a GPU never waits on the host between batches; ``bf16`` runs
the forward pass under autocast (weights and optimiser stay in fp32).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

Precision = Literal["fp32", "bf16"]


class StandardisedMLP(nn.Module):
    """Standardisation inside the graph, then ReLU layers: clients send raw features."""

    def __init__(
        self, mean: np.ndarray, std: np.ndarray, hidden: tuple[int, ...], n_classes: int
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std + 1e-6, dtype=torch.float32))
        layers: list[nn.Module] = []
        width = len(mean)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Any) -> Any:
        return self.net((x - self.mean) / self.std)


class WithSoftmax(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Any) -> Any:
        return torch.softmax(self.inner(x), dim=1)


@dataclass(frozen=True)
class FitStats:
    samples: int
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds else float("nan")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit(
    model: nn.Module,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    seed: int,
    device: str = "cpu",
    precision: Precision = "fp32",
) -> FitStats:
    """Train ``model`` in place with AdamW and cross-entropy; return how much and how fast."""
    dev = torch.device(device)
    model.to(dev).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.as_tensor(features, dtype=torch.float32, device=dev)
    y = torch.as_tensor(labels, dtype=torch.int64, device=dev)
    generator = torch.Generator(device=dev).manual_seed(seed)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    _sync(dev)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator, device=dev)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            optimiser.zero_grad(set_to_none=True)
            with autocast:
                loss = loss_fn(model(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
    _sync(dev)
    return FitStats(samples=epochs * len(x), seconds=time.perf_counter() - started)
