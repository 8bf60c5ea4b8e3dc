"""Trainer throughput: our training loop vs a plain hand-written PyTorch loop.

Same model (the built-in standardised MLP), same synthetic data, same batch
size, optimiser and number of epochs, in one process. Prints samples per second
of each, the ratio (target: ours at least 0.95 of the plain loop), bf16 against fp32 for
ours, and — on a GPU — utilisation and memory read through nvidia-ml-py while
each run trains.

Run: ``python bench/bench_trainer.py [--device cuda] [--rows N] [--epochs E]``.
On this repository's CPU boxes it runs small; the figures that matter come
from a GPU server (see the closing note of the training issue).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import torch
from torch import nn

from hub.training.mlp import Precision, StandardisedMLP, fit

HIDDEN = (512, 512, 256)
FEATURES = 64
DEFAULT_BATCH = 8192


@dataclass
class GpuSample:
    utilisation: list[float] = field(default_factory=list)
    memory_mib: list[float] = field(default_factory=list)


@contextmanager
def gpu_sampler(device: str, period_s: float = 0.05) -> Iterator[GpuSample]:
    """Sample GPU utilisation and memory through NVML while the block runs."""
    sample = GpuSample()
    if not device.startswith("cuda"):
        yield sample
        return
    import pynvml

    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            sample.utilisation.append(float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))
            sample.memory_mib.append(pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20)
            stop.wait(period_s)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield sample
    finally:
        stop.set()
        thread.join()
        pynvml.nvmlShutdown()


def synthetic(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32) * 3 + 1
    w = rng.standard_normal(FEATURES).astype(np.float32)
    y = (x @ w + rng.standard_normal(rows).astype(np.float32) > 0).astype(np.int64)
    return x, y


def new_model(x: np.ndarray) -> StandardisedMLP:
    torch.manual_seed(0)
    return StandardisedMLP(x.mean(axis=0), x.std(axis=0), HIDDEN, 2)


def plain_loop(
    x_np: np.ndarray,
    y_np: np.ndarray,
    epochs: int,
    device: str,
    precision: Precision,
    batch: int,
) -> float:
    """The loop anyone would write by hand; returns seconds."""
    dev = torch.device(device)
    model = new_model(x_np).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.as_tensor(x_np, device=dev)
    y = torch.as_tensor(y_np, device=dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(len(x), device=dev)
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            opt.zero_grad(set_to_none=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


def ours(
    x: np.ndarray, y: np.ndarray, epochs: int, device: str, precision: Precision, batch: int
) -> float:
    stats = fit(
        new_model(x),
        x,
        y,
        epochs=epochs,
        batch_size=batch,
        learning_rate=1e-3,
        weight_decay=1e-4,
        seed=0,
        device=device,
        precision=precision,
        # as a worker runs it: a stop flag looked at per batch, progress per epoch
        on_epoch=lambda _epoch, _loss: None,
        stop=threading.Event(),
    )
    return stats.seconds


@dataclass
class Figure:
    name: str
    precision: str
    samples_per_s: float
    runs_s: list[float]
    gpu_util_mean: float | None
    gpu_mem_peak_mib: float | None


def measure(
    name: str, run: Callable[[], float], samples: int, device: str, precision: str, repeats: int
) -> Figure:
    run()  # warm-up: kernels, allocator, autocast caches
    times: list[float] = []
    with gpu_sampler(device) as gpu:
        for _ in range(repeats):
            times.append(run())
    best = min(times)
    util = statistics.fmean(gpu.utilisation) if gpu.utilisation else None
    mem = max(gpu.memory_mib) if gpu.memory_mib else None
    return Figure(name, precision, samples / best, times, util, mem)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rows", type=int, default=None, help="default 4M on GPU, 200k on CPU")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    rows = args.rows or (4_000_000 if args.device.startswith("cuda") else 200_000)
    x, y = synthetic(rows)
    samples = rows * args.epochs
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(
        f"device {name}; torch {torch.__version__}; {rows:,} rows x {FEATURES} features; "
        f"MLP {HIDDEN}; batch {args.batch}; {args.epochs} epochs; best of {args.repeats}"
    )
    figures: list[Figure] = []
    precisions: tuple[Precision, ...] = ("bf16", "fp32")
    for precision in precisions:
        for label, loop in (("plain PyTorch loop", plain_loop), ("our trainer (fit)", ours)):
            figures.append(
                measure(
                    label,
                    partial(loop, x, y, args.epochs, args.device, precision, args.batch),
                    samples,
                    args.device,
                    precision,
                    args.repeats,
                )
            )
    header = f"{'run':<22}{'precision':>10}{'samples/s':>14}{'GPU util %':>12}{'GPU MiB':>10}"
    print(f"\n{header}  runs (s)")
    for f in figures:
        util = f"{f.gpu_util_mean:.0f}" if f.gpu_util_mean is not None else "-"
        mem = f"{f.gpu_mem_peak_mib:.0f}" if f.gpu_mem_peak_mib is not None else "-"
        runs = " ".join(f"{t:.3f}" for t in f.runs_s)
        print(f"{f.name:<22}{f.precision:>10}{f.samples_per_s:>14,.0f}{util:>12}{mem:>10}  {runs}")
    by = {(f.name, f.precision): f.samples_per_s for f in figures}
    for precision in precisions:
        ratio = by[("our trainer (fit)", precision)] / by[("plain PyTorch loop", precision)]
        verdict = "PASS" if ratio >= 0.95 else "MISS"
        print(f"ours / plain loop, {precision}: {ratio:.3f}  (target >= 0.95: {verdict})")
    amp = by[("our trainer (fit)", "bf16")] / by[("our trainer (fit)", "fp32")]
    print(f"ours bf16 / ours fp32:   {amp:.3f}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "device": name,
                    "rows": rows,
                    "epochs": args.epochs,
                    "figures": [asdict(f) for f in figures],
                },
                out,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
