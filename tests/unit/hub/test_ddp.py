"""The built-in MLP under torchrun (DDP) on CPU with gloo: it learns, reports, and stops."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from hub.training.mlp import Stopped
from hub.worker.context import TrainContext
from hub.worker.ddp import train_mlp_distributed

pytestmark = pytest.mark.slow


def _problem(rows: int = 400, features: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Two classes whose means lie far apart on every feature."""
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, rows).astype(np.int64)
    x = rng.normal(0.0, 1.0, (rows, features)) + np.where(labels[:, None] == 1, 2.0, -2.0)
    return x.astype(np.float32), labels


def _context(x: np.ndarray, y: np.ndarray, epochs: int) -> TrainContext:
    return TrainContext(
        features=x,
        labels=y,
        feature_names=[f"f{i}" for i in range(x.shape[1])],
        task="classification",
        classes=["no", "yes"],
        params={"epochs": epochs, "hidden": [16], "batch_size": 32, "learning_rate": 1e-2},
        device="cpu",
    )


def _processes() -> dict[int, tuple[int, list[bytes]]]:
    """Live (not zombie) processes: pid -> (process group, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()  # after "(comm)"
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # ended meanwhile
        if stat[0] != "Z":
            found[int(entry.name)] = (int(stat[2]), cmdline)
    return found


def _launched_on(work_dir: Path) -> dict[int, tuple[int, list[bytes]]]:
    """torchrun and its ranks: the live processes whose command line names ``work_dir``."""
    return {pid: p for pid, p in _processes().items() if str(work_dir).encode() in p[1]}


def test_two_gloo_processes_learn_and_report(tmp_path):
    x, y = _problem()
    x_train, y_train, x_test, y_test = x[:300], y[:300], x[300:], y[300:]
    reports: list[tuple[float, str]] = []
    ctx = _context(x_train, y_train, epochs=5)
    ctx.report = lambda f, m: reports.append((f, m))

    module = train_mlp_distributed(ctx, 2, tmp_path)

    with torch.no_grad():
        probs = module(torch.as_tensor(x_test)).numpy()
    accuracy = float((probs.argmax(axis=1) == y_test).mean())
    assert accuracy >= 0.9
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    assert "2 processes" in reports[0][1]
    epochs = [m for _, m in reports if m.startswith("epoch ")]
    assert epochs and epochs[-1].startswith("epoch 5/5, loss ")
    assert reports[-1][0] == 1.0
    assert [f for f, _ in reports] == sorted(f for f, _ in reports)


def test_stop_kills_the_process_group(tmp_path):
    x, y = _problem()
    ctx = _context(x, y, epochs=1_000_000)
    pgids: list[int] = []
    stopped_late = threading.Event()

    def report(_fraction: float, message: str) -> None:
        # Stop once the ranks are training (rank 0 wrote an epoch), not while they start.
        if message.startswith("epoch ") and not ctx.stop.is_set():
            launched = _launched_on(tmp_path)
            assert len(launched) == 3  # torchrun and two ranks
            pgids.extend(
                group for group, cmd in launched.values() if b"torch.distributed.run" in cmd
            )
            ctx.stop.set()

    ctx.report = report

    def too_late() -> None:  # never hang the suite
        stopped_late.set()
        ctx.stop.set()

    watchdog = threading.Timer(120, too_late)
    watchdog.start()
    try:
        with pytest.raises(Stopped):
            train_mlp_distributed(ctx, 2, tmp_path)
    finally:
        watchdog.cancel()
    assert pgids, "training never reported an epoch"
    assert not stopped_late.is_set(), "the stop did not end the training: the watchdog did"
    assert not [pid for pid, p in _processes().items() if p[0] == pgids[0]]  # torchrun's group
    assert _launched_on(tmp_path) == {}  # the ranks, each in a session of its own
