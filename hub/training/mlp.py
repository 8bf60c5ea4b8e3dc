"""The MLP and its training loop, shared by the built-in trainer, workers and the benchmark.

The loop keeps the whole training set on the device and draws each epoch's
order there, so a GPU never waits on the host between batches; ``bf16`` runs
the forward pass under autocast (weights and optimiser stay in fp32).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

Precision = Literal["fp32", "bf16"]
Loss = Literal["cross_entropy", "mse"]


class Stopped(Exception):
    """Training stopped because ``stop`` was set (the job was cancelled or its lease lost)."""


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


class Rescaled(nn.Module):
    """A regression head trained on standardised targets, answering in the targets' units."""

    def __init__(self, inner: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: Any) -> Any:
        return self.inner(x) * self.std + self.mean


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
    loss: Loss = "cross_entropy",
    on_epoch: Callable[[int, float], None] | None = None,
    stop: threading.Event | None = None,
) -> FitStats:
    """Train ``model`` in place with AdamW; return how much and how fast.

    ``cross_entropy`` takes class indices, ``mse`` float targets (``[n]``, compared
    with the model's single output column). ``on_epoch(epoch, last_loss)`` is called
    after each epoch (it costs one device sync per epoch); ``stop`` is looked at
    before every batch and raises :class:`Stopped` when set.
    """
    dev = torch.device(device)
    model.to(dev).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    loss_fn: nn.Module = nn.CrossEntropyLoss() if loss == "cross_entropy" else nn.MSELoss()
    x = torch.as_tensor(features, dtype=torch.float32, device=dev)
    if loss == "cross_entropy":
        y = torch.as_tensor(labels, dtype=torch.int64, device=dev)
    else:
        y = torch.as_tensor(labels, dtype=torch.float32, device=dev).reshape(-1, 1)
    generator = torch.Generator(device=dev).manual_seed(seed)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    _sync(dev)
    started = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=generator, device=dev)
        for start in range(0, len(order), batch_size):
            if stop is not None and stop.is_set():
                raise Stopped(f"stopped in epoch {epoch + 1} of {epochs}")
            batch = order[start : start + batch_size]
            optimiser.zero_grad(set_to_none=True)
            with autocast:
                batch_loss = loss_fn(model(x[batch]), y[batch])
            batch_loss.backward()
            optimiser.step()
        if on_epoch is not None:
            on_epoch(epoch + 1, float(batch_loss.detach()))
    _sync(dev)
    return FitStats(samples=epochs * len(x), seconds=time.perf_counter() - started)
