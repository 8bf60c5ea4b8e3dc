"""Pure formatting of training jobs and GPU workers (no clock, no network)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from appliance.wire.training import GpuSample, JobInfo, LogLine, WorkerInfo
from tui.format import common as fmt

JOB_STYLE = {
    "queued": "cyan",
    "running": "bold yellow",
    "succeeded": "green",
    "rejected": "magenta",
    "failed": "bold red",
    "cancelled": "dim",
}
WORKER_STYLE = {"busy": "bold yellow", "idle": "green", "lost": "bold red"}
JOB_COLUMNS = ("id", "model", "state", "progress", "worker", "result", "why", "submitted (UTC)")
WORKER_COLUMNS = ("worker", "state", "job", "util", "memory", "temp", "zone", "GPU", "last seen")


def progress_bar(fraction: float, width: int = 10) -> str:
    """``██████░░░░  60%``."""
    fraction = min(max(fraction, 0.0), 1.0)
    full = round(fraction * width)
    return "█" * full + "░" * (width - full) + f" {fraction * 100:3.0f}%"


def job_state(job: JobInfo) -> str:
    cancelling = job.cancel_requested and job.state == "running"
    return f"{job.state} (cancelling)" if cancelling else job.state


def job_cells(job: JobInfo) -> list[str | Text]:
    shown = job.state not in ("queued", "cancelled") or job.progress > 0
    return [
        str(job.id),
        Text(job.model),
        Text(job_state(job), style=JOB_STYLE.get(job.state, "")),
        progress_bar(job.progress) if shown else "-",
        Text(job.worker or "-"),
        f"v{job.result_version}" if job.result_version is not None else "-",
        Text(job.reason),
        fmt.moment(job.created_at),
    ]


def job_summary(job: JobInfo) -> str:
    """Three lines over the log tail: who, where and how far; what it says; its metrics."""
    where = f" on {job.worker}" if job.worker else ""
    attempt = f", attempt {job.attempts}" if job.attempts > 1 else ""
    result = f" -> candidate v{job.result_version}" if job.result_version is not None else ""
    head = (
        f"job {job.id} · {job.model} · {job_state(job)}{where}{attempt}{result} · "
        f"{job.submitted_by}, {job.reason}"
    )
    return "\n".join(
        [head, f"status   {job.message or '-'}", f"metrics  {fmt.metrics_text(job.metrics)}"]
    )


def log_lines(lines: Sequence[LogLine]) -> list[str]:
    """``10:04:05 epoch 3/40 …``: the time of day (UTC) and the line."""
    return [f"{line.at[11:19]} {line.line}" for line in lines]


def cancel_body(job: JobInfo) -> str:
    if job.state == "queued":
        return f"Job {job.id} ({job.model}) leaves the queue now and never runs."
    return (
        f"Job {job.id} ({job.model}) is running on {job.worker or 'a worker'}: the worker is told "
        "at its next heartbeat, stops, and the job ends as cancelled. Nothing is registered."
    )


def cancelled(job: JobInfo) -> str:
    """What the console says once the hub has taken a cancellation."""
    if job.state == "cancelled":
        return f"training job {job.id} cancelled"
    return f"training job {job.id}: {job.worker or 'its worker'} stops at its next heartbeat"


@dataclass(frozen=True)
class GpuFigures:
    """One worker's GPUs at a glance: mean utilisation, summed memory, hottest GPU."""

    model: str
    util_pct: float
    memory_used_mib: float
    memory_total_mib: float
    temperature_c: float


def gpu_figures(gpus: Sequence[GpuSample]) -> GpuFigures | None:
    if not gpus:
        return None
    names = sorted({g.name for g in gpus})
    model = names[0] if len(names) == 1 else " / ".join(names)
    return GpuFigures(
        model=f"{len(gpus)}x {model}" if len(gpus) > 1 else model,
        util_pct=sum(g.utilization_pct for g in gpus) / len(gpus),
        memory_used_mib=sum(g.memory_used_mib for g in gpus),
        memory_total_mib=sum(g.memory_total_mib for g in gpus),
        temperature_c=max(g.temperature_c for g in gpus),
    )


def worker_cells(worker: WorkerInfo) -> list[str | Text]:
    gpus = gpu_figures(worker.telemetry.gpus)
    if gpus is None:
        figures: list[str | Text] = ["-", "-", "-", Text(worker.telemetry.note or "-")]
    else:
        figures = [
            f"{gpus.util_pct:.0f}%",
            f"{gpus.memory_used_mib / 1024:.1f}/{gpus.memory_total_mib / 1024:.0f} GiB",
            f"{gpus.temperature_c:.0f}°C",
            Text(gpus.model),
        ]
    return [
        Text(worker.name),
        Text(worker.state, style=WORKER_STYLE.get(worker.state, "")),
        str(worker.job_id) if worker.job_id is not None else "-",
        *figures[:3],
        Text(worker.zone),
        figures[3],
        fmt.moment(worker.last_seen_at),
    ]


@dataclass(frozen=True)
class GpuSeries:
    """A worker's readings for the plot, against minutes before its latest reading:
    utilisation (mean over its GPUs, as in the table) and the hottest GPU's temperature."""

    gpus: int
    minutes: list[float]
    util_pct: list[float]
    temperature_c: list[float]


def gpu_history(worker: WorkerInfo) -> GpuSeries | None:
    """From the worker's recent readings (oldest first); None without any."""
    readings = [r for r in worker.history if r.get("gpus")]
    if not readings:
        return None
    last = float(readings[-1]["at"])
    return GpuSeries(
        gpus=max(len(r["gpus"]) for r in readings),
        minutes=[round((float(r["at"]) - last) / 60, 2) for r in readings],
        util_pct=[sum(float(g[0]) for g in r["gpus"]) / len(r["gpus"]) for r in readings],
        temperature_c=[max(float(g[2]) for g in r["gpus"]) for r in readings],
    )


def worker_note(worker: WorkerInfo) -> str | None:
    """Why the selected worker has no plot, or None when it has readings."""
    if not worker.telemetry.gpus and worker.telemetry.note:
        return f"{worker.name}: {worker.telemetry.note} (it trains on CPU; nothing to plot)"
    if gpu_history(worker) is None:
        return f"{worker.name}: no GPU readings yet"
    return None
