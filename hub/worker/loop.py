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

from appliance.errors import ApplianceError, HubRejectedError, HubUnavailableError
from appliance.hub_client import HubClient
from appliance.training_schemas import ClaimRequest, FailRequest, HeartbeatRequest, JobInfo
from hub.training.mlp import Stopped
from hub.worker.progress import Progress
from hub.worker.runner import run_job
from hub.worker.telemetry import GpuTelemetry

log = logging.getLogger("appliance.worker")


@dataclass(frozen=True)
class WorkerSettings:
    name: str
    zone: str
    heartbeat_s: float = 10.0
    poll_s: float = 5.0
    device: str = "auto"
    """``auto`` (the first GPU if there is one), ``cpu`` or ``cuda[:N]``."""


def pick_device(requested: str) -> str:
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Worker:
    def __init__(self, hub: HubClient, settings: WorkerSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.telemetry = GpuTelemetry()
        self.device = pick_device(settings.device)
        self.stopping = threading.Event()

    def run_forever(self) -> None:
        log.info(
            "worker %s (zone %s) on %s; %s",
            self.settings.name,
            self.settings.zone,
            self.device,
            self.telemetry.note or f"{self.telemetry.count} GPU(s)",
        )
        while not self.stopping.is_set():
            if not self.run_once():
                self.stopping.wait(self.settings.poll_s)
        self.telemetry.close()

    def run_once(self) -> bool:
        """Claim and work one job; False when there was none (or the hub was away)."""
        try:
            job = self.hub.claim_training(
                ClaimRequest(
                    worker=self.settings.name,
                    zone=self.settings.zone,
                    telemetry=self.telemetry.sample(),
                )
            )
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
        try:
            outcome = run_job(self.hub, job, self.settings.name, self.device, progress)
            self._flush(job.id, progress)
            done = self.hub.training_result(
                job.id,
                {
                    "worker": self.settings.name,
                    "verdict": outcome.verdict,
                    "metrics": outcome.metrics,
                    "lineage": outcome.lineage,
                },
                onnx_bytes=outcome.onnx_bytes,
                reference_npy=outcome.reference_npy,
            )
            log.info("job %d: %s (%s)", job.id, done.state, done.message)
        except Stopped as exc:
            self._end(job.id, progress, f"stopped: {exc}", cancelled=True)
        except ApplianceError as exc:
            reason = exc.message + (f" ({exc.hint})" if exc.hint else "")
            self._end(job.id, progress, reason, cancelled=False)
        except Exception as exc:
            log.error("job %d failed:\n%s", job.id, traceback.format_exc())
            self._end(job.id, progress, f"{type(exc).__name__}: {exc}", cancelled=False)
        finally:
            beating.set()
            heart.join(timeout=self.settings.heartbeat_s + 5)

    def _end(self, job_id: int, progress: Progress, reason: str, *, cancelled: bool) -> None:
        if progress.lease_lost:
            log.warning("job %d: lease lost; dropped without reporting (%s)", job_id, reason)
            return
        try:
            self._flush(job_id, progress)
            done = self.hub.training_failed(
                job_id, FailRequest(worker=self.settings.name, reason=reason, cancelled=cancelled)
            )
            log.info("job %d: %s (%s)", job_id, done.state, reason)
        except ApplianceError as exc:
            log.warning("job %d: could not report its end: %s", job_id, exc.message)

    def _flush(self, job_id: int, progress: Progress) -> None:
        """Send the log lines still pending, so the job's log is whole when it ends."""
        self._beat(job_id, progress)

    def _beat(self, job_id: int, progress: Progress) -> None:
        fraction, message, lines = progress.drain()
        try:
            answer = self.hub.training_heartbeat(
                job_id,
                HeartbeatRequest(
                    worker=self.settings.name,
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
