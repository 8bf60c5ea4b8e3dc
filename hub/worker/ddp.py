"""The built-in MLP trained over several processes with torchrun (PyTorch DDP).

The worker schedules nothing itself: it writes the training rows to a work
folder and runs ``python -m torch.distributed.run`` on this module, one process
per GPU (NCCL), or several on CPU (gloo: the same code, slower). Every rank
builds the same initial model from the same seed and trains on its own shard of
the rows; the shards are equal in size so every rank takes the same number of
steps (a rank with one step more would wait in its all-reduce forever). Rank 0
writes the progress and the trained weights; the worker turns the progress into
``ctx.report`` calls and stops the whole process group when the job is cancelled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record
from torch.nn.parallel import DistributedDataParallel

from appliance.children import die_with_parent, dying_with
from appliance.errors import ApplianceError, InvalidInputError
from hub.training.mlp import Stopped, fit
from hub.worker.context import TrainContext
from hub.worker.mlp_recipe import (
    MlpParams,
    build_mlp,
    fit_options,
    fit_targets,
    resolved_precision,
    trainable,
)

CONFIG_FILE = "config.json"
FEATURES_FILE = "features.npy"
LABELS_FILE = "labels.npy"
PROGRESS_FILE = "progress.json"
MODEL_FILE = "model.pt"
LOG_FILE = "torchrun.log"
ERROR_GLOB = "error-rank*.txt"

POLL_S = 0.2
"""How often the worker looks at the progress file and the stop flag."""
PROGRESS_EVERY_S = 0.5
"""Rank 0 writes progress at most this often (tiny epochs would otherwise mean a write each)."""
TERM_GRACE_S = 5.0
"""After SIGTERM, how long the process group gets before SIGKILL."""
LOG_TAIL_LINES = 20
MAX_ERROR_CHARS = 300


def train_mlp_distributed(ctx: TrainContext, processes: int, work_dir: Path) -> torch.nn.Module:
    """Train the built-in MLP under torchrun with ``processes`` ranks; the module, on CPU.

    Raises :class:`Stopped` when ``ctx.stop`` is set (the process group is killed
    first) and :class:`ApplianceError` with the end of torchrun's output when it fails.
    """
    params = MlpParams.parse(ctx.params)  # bad params fail here, not in every rank
    if len(ctx.features) < processes:
        raise InvalidInputError(
            f"{len(ctx.features)} training rows cannot be shared by {processes} processes"
        )
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in [work_dir / PROGRESS_FILE, work_dir / MODEL_FILE, *work_dir.glob(ERROR_GLOB)]:
        stale.unlink(missing_ok=True)
    np.save(work_dir / FEATURES_FILE, ctx.features, allow_pickle=False)
    np.save(work_dir / LABELS_FILE, ctx.labels, allow_pickle=False)
    config = {
        "task": ctx.task,
        "classes": ctx.classes,
        "feature_names": ctx.feature_names,
        "params": ctx.params,
        "device": ctx.device,
    }
    (work_dir / CONFIG_FILE).write_text(json.dumps(config))
    precision = resolved_precision(params.precision, ctx.device)
    ctx.report(
        0.0,
        f"training an MLP {list(params.hidden)} on {processes} processes "
        f"({ctx.device}, {precision}, torchrun)",
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "hub.worker.ddp",
        str(work_dir),
    ]
    with (work_dir / LOG_FILE).open("wb") as log:
        # A session of its own, so that killing it reaches nothing of the worker's.
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=dying_with(os.getpid()),  # a SIGKILLed worker takes torchrun along
        )
    try:
        returncode = _supervise(proc, ctx, work_dir)
    finally:
        _end_group(proc)
    if returncode != 0:
        raise ApplianceError(
            f"distributed training failed: {_first_error(work_dir)} "
            f"(torchrun exited {returncode}); its output ends:\n{_tail(work_dir / LOG_FILE)}"
        )
    if not (work_dir / MODEL_FILE).exists():
        raise ApplianceError(
            "distributed training ended without saving the model:\n" + _tail(work_dir / LOG_FILE)
        )
    module = build_mlp(ctx, params)
    state = torch.load(work_dir / MODEL_FILE, map_location="cpu", weights_only=True)
    trainable(module).load_state_dict(state)
    result: torch.nn.Module = module.cpu()
    return result


def _supervise(proc: subprocess.Popen[bytes], ctx: TrainContext, work_dir: Path) -> int:
    """Relay rank 0's progress until torchrun exits; stop it all when ``ctx.stop`` is set."""
    reported: tuple[int, int] | None = None
    while True:
        if ctx.stop.is_set():
            _end_group(proc)
            where = f" in epoch {reported[0] + 1} of {reported[1]}" if reported else ""
            raise Stopped(f"stopped{where} (distributed training)")
        returncode = proc.poll()  # before reading progress: the last epoch is not missed
        reported = _relay_progress(ctx, work_dir / PROGRESS_FILE, reported)
        if returncode is not None:
            return returncode
        ctx.stop.wait(POLL_S)


def _relay_progress(
    ctx: TrainContext, path: Path, reported: tuple[int, int] | None
) -> tuple[int, int] | None:
    try:
        state = json.loads(path.read_text())
        epoch, epochs, loss = int(state["epoch"]), int(state["epochs"]), float(state["loss"])
    except (OSError, ValueError, KeyError, TypeError):
        return reported  # not written yet
    if reported != (epoch, epochs):
        ctx.report(epoch / epochs, f"epoch {epoch}/{epochs}, loss {loss:.4f}")
    return epoch, epochs


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM torchrun's process group, SIGKILL it after the grace period, reap torchrun.

    torchrun starts each rank in a session of its own, out of this killpg's reach: on
    SIGTERM it ends them itself, and when SIGKILLed they die with it (see
    :func:`_die_with_torchrun`).
    """
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(TERM_GRACE_S)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
    _signal_group(proc.pid, signal.SIGKILL)  # whatever else torchrun left in its group


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(pgid, sig)


def _die_with_torchrun() -> bool:
    """Have the kernel SIGKILL this rank when torchrun dies; False if it is dead already.

    Without this, ranks outlive a SIGKILLed torchrun and go on training with each other.
    """
    if not sys.platform.startswith("linux"):
        return True
    die_with_parent(signal.SIGKILL)
    try:  # torchrun may have died before prctl: then the parent is a reaper, not torchrun
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return False
    return b"torch.distributed.run" in parent.split(b"\0")


def _first_error(work_dir: Path) -> str:
    """The exception of the rank that failed first: the cause, where later ones are echoes.

    It leads the message because the hub keeps only the start of a long failure reason.
    """
    errors = sorted(work_dir.glob(ERROR_GLOB), key=lambda p: p.stat().st_mtime_ns)
    if not errors:
        return "no rank reported an exception"
    text = errors[0].read_text(errors="replace").strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no torchrun output: {exc.strerror})"
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file and rename, so the reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _shard(rows: int, seed: int, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s rows: a seeded shuffle cut into ``world`` equal blocks (the rest unused)."""
    order = np.random.default_rng(seed).permutation(rows)
    size = rows // world
    return order[rank * size : (rank + 1) * size]


@record  # a rank's exception goes into torchrun's summary, the end of the output we report
def main(argv: list[str] | None = None) -> int:
    """One rank, started by torchrun: train its shard under DDP; rank 0 saves the result."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: torchrun ... -m hub.worker.ddp WORK_DIR", file=sys.stderr)
        return 2
    if not _die_with_torchrun():
        return 1
    work_dir = Path(args[0])
    config = json.loads((work_dir / CONFIG_FILE).read_text())
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    cuda = str(config["device"]).startswith("cuda")
    device = f"cuda:{local_rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    try:
        ctx = TrainContext(
            features=np.load(work_dir / FEATURES_FILE, allow_pickle=False),
            labels=np.load(work_dir / LABELS_FILE, allow_pickle=False),
            feature_names=config["feature_names"],
            task=config["task"],
            classes=config["classes"],
            params=config["params"],
            device=device,
        )
        params = MlpParams.parse(ctx.params)
        torch.manual_seed(params.seed)  # the same initial weights on every rank
        module = build_mlp(ctx, params)
        model = DistributedDataParallel(
            trainable(module).to(device), device_ids=[local_rank] if cuda else None
        )
        rows = _shard(len(ctx.features), params.seed, rank, world)
        last_write = 0.0

        def on_epoch(epoch: int, loss: float) -> None:
            nonlocal last_write
            now = time.monotonic()
            if epoch in (1, params.epochs) or now - last_write >= PROGRESS_EVERY_S:
                last_write = now
                state = {"epoch": epoch, "epochs": params.epochs, "loss": loss}
                _write_atomic(work_dir / PROGRESS_FILE, lambda p: p.write_text(json.dumps(state)))

        fit(
            model,
            ctx.features[rows],
            fit_targets(ctx)[rows],
            seed=params.seed + rank,
            on_epoch=on_epoch if rank == 0 else None,
            **fit_options(ctx, params),
        )
        if rank == 0:
            weights = {k: v.detach().cpu() for k, v in model.module.state_dict().items()}
            _write_atomic(work_dir / MODEL_FILE, lambda p: torch.save(weights, p))
        # Every rank tears gloo down together: a rank that destroyed its process group while
        # rank 0 was still saving aborted at exit now and then ("terminate called without
        # an active exception", SIGABRT), and torchrun reported the run failed.
        dist.barrier()
    except Exception as exc:
        message = f"rank {rank}: {type(exc).__name__}: {exc}"
        _write_atomic(work_dir / f"error-rank{rank}.txt", lambda p: p.write_text(message))
        raise
    finally:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
