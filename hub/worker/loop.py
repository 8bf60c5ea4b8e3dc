"""The worker process: claim a job, keep its lease alive, run it, report, repeat.

While a job runs, a heartbeat thread renews the lease every ``heartbeat_s``
with the job's progress, new log lines and GPU readings. The hub's answer can
say ``cancel``: the training loop sees the stop flag before its next batch and
the worker reports the job cancelled. A 409 means the lease is gone (the hub
gave the job to another worker after missed heartbeats): the worker drops the
job without reporting. An unreachable hub is retried; training goes on.
"""

from __future__ import annotations

import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Any

from appliance.client.hub import HubClient
from appliance.errors import ApplianceError, ConfigError, HubRejectedError, HubUnavailableError
from appliance.sd_notify import notify
from appliance.wire.training import ClaimRequest, FailRequest, HeartbeatRequest, JobInfo
from hub.training.mlp import Stopped
from hub.worker.progress import Progress
from hub.worker.runner import Outcome, first_line, run_job
from hub.worker.telemetry import GpuTelemetry

log = logging.getLogger("appliance.worker")


@dataclass(frozen=True)
class WorkerSettings:
    name: str
    """The worker's account name: the hub knows the worker by its credential, not by this."""
    zone: str
    """The account's zone, for the log (the hub reads data for the account's zone)."""
    heartbeat_s: float = 10.0
    poll_s: float = 5.0
    device: str = "auto"
    """``auto`` (the first GPU if there is one), ``cpu`` or ``cuda[:N]``."""
    processes: int = 0
    """Training processes for the built-in trainers (torchrun/DDP above 1); 0: one per
    visible GPU when the device is ``cuda`` and there are several, else 1."""


def pick_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch  # lazy: torch takes 1 s; only a worker that trains needs it

    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_processes(requested: int, device: str) -> int:
    """How many training processes to run; checked here so a bad flag fails at start."""
    if requested < 0:
        raise ConfigError(f"processes must be 0 (auto) or more, not {requested}")
    if device != "cuda":
        # cpu (several gloo processes only when asked) or one pinned GPU
        if requested > 1 and device.startswith("cuda"):
            raise ConfigError(
                f"--processes {requested} needs --device cuda (every visible GPU), not {device}"
            )
        return requested or 1
    import torch  # lazy: torch takes 1 s; only a worker that trains needs it

    gpus = torch.cuda.device_count()
    if requested > gpus:
        raise ConfigError(
            f"--processes {requested}: only {gpus} GPU(s) visible (one process per GPU)"
        )
    return requested or max(gpus, 1)


def whoami_once_reachable(
    hub: HubClient, stopping: threading.Event, first_wait: float, longest_wait: float = 30.0
) -> dict[str, Any] | None:
    """The signed-in account (``/api/v1/auth/me``), asked until the hub answers: a worker
    started with its hub (one ``systemctl start`` in an upgrade, a GPU server that boots
    first after a power cut) waits for it instead of exiting, each wait twice the last up
    to ``longest_wait``. None once ``stopping`` is set; a refusal (an expired session, a
    non-worker account) is raised at once."""
    wait = first_wait
    while True:
        try:
            return hub.whoami()
        except HubUnavailableError as exc:
            log.warning("hub unreachable at start, will retry in %.1f s: %s", wait, exc.message)
        if stopping.wait(wait):
            return None
        wait = min(wait * 2, longest_wait)


class Worker:
    def __init__(
        self, hub: HubClient, settings: WorkerSettings, stopping: threading.Event | None = None
    ) -> None:
        self.hub = hub
        self.settings = settings
        self.telemetry = GpuTelemetry()
        self.device = pick_device(settings.device)
        self.processes = pick_processes(settings.processes, self.device)
        self.stopping = stopping or threading.Event()
        """Set by SIGTERM: the job in hand is stopped and reported, then the loop ends."""

    def run_forever(self) -> None:
        log.info(
            "worker %s (zone %s) on %s, %d training process(es); %s",
            self.settings.name,
            self.settings.zone,
            self.device,
            self.processes,
            self.telemetry.note or f"{self.telemetry.count} GPU(s)",
        )
        notify("READY=1")
        while not self.stopping.is_set():
            if not self.run_once():
                self.stopping.wait(self.settings.poll_s)
        notify("STOPPING=1")
        self.telemetry.close()

    def run_once(self) -> bool:
        """Claim and work one job; False when there was none (or the hub was away)."""
        try:
            job = self.hub.claim_training(ClaimRequest(telemetry=self.telemetry.sample()))
        except HubUnavailableError as exc:
            log.warning("hub unreachable, will retry: %s", exc.message)
            return False
        if job is None:
            return False
        self.work(job)
        return True

    def work(self, job: JobInfo) -> None:
        log.info("job %d: %s (attempt %d)", job.id, job.model, job.attempts)
        progress = Progress()
        beating = threading.Event()
        heart = threading.Thread(
            target=self._heartbeat, args=(job.id, progress, beating), daemon=True
        )
        heart.start()
        outcome: Outcome | None = None
        reason, cancelled = "", False
        try:
            outcome = run_job(
                self.hub, job, self.settings.name, self.device, progress, self.processes
            )
        except Stopped as exc:
            reason, cancelled = f"stopped: {exc}", True
        except ApplianceError as exc:
            reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
        except Exception as exc:
            log.error("job %d failed:\n%s", job.id, traceback.format_exc())
            reason = f"{type(exc).__name__}: {first_line(exc)}"
        finally:
            beating.set()  # no heartbeat may follow the job's end
            heart.join(timeout=self.settings.heartbeat_s + 30)
        if progress.lease_lost:
            log.warning("job %d: lease lost; dropped without reporting (%s)", job.id, reason)
            return
        self._beat(job.id, progress)  # the log lines still pending
        try:
            if outcome is None:
                done = self.hub.training_failed(
                    job.id,
                    FailRequest(reason=reason, cancelled=cancelled),
                )
            else:
                done = self.hub.training_result(
                    job.id,
                    {
                        "verdict": outcome.verdict,
                        "metrics": outcome.metrics,
                        "lineage": outcome.lineage,
                    },
                    onnx_bytes=outcome.onnx_bytes,
                    reference_npy=outcome.reference_npy,
                )
        except ApplianceError as exc:
            # the lease runs out and the job is worked again (up to its attempts)
            log.warning("job %d: could not report its end: %s", job.id, exc.message)
            return
        log.info("job %d: %s (%s)", job.id, done.state, done.message)

    def _beat(self, job_id: int, progress: Progress) -> None:
        fraction, message, lines = progress.drain()
        try:
            answer = self.hub.training_heartbeat(
                job_id,
                HeartbeatRequest(
                    progress=fraction,
                    message=message,
                    logs=lines,
                    telemetry=self.telemetry.sample(),
                ),
            )
        except HubUnavailableError as exc:
            progress.put_back(lines)
            log.warning("heartbeat for job %d failed, will retry: %s", job_id, exc.message)
            return
        except HubRejectedError as exc:
            if exc.status_code == 409:
                progress.lease_lost = True
                progress.stop.set()
            log.warning("heartbeat for job %d refused: %s", job_id, exc.message)
            return
        if answer.cancel and not progress.stop.is_set():
            progress.log("cancelled on the hub; stopping")
            progress.stop.set()

    def _heartbeat(self, job_id: int, progress: Progress, done: threading.Event) -> None:
        while not done.wait(self.settings.heartbeat_s):
            self._beat(job_id, progress)
