"""The training part of :class:`appliance.client.hub.HubClient`: jobs, schedules, workers."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import msgspec

from appliance.errors import HubError
from appliance.wire.features import SnapshotRef
from appliance.wire.training import (
    TERMINAL_STATES,
    ClaimRequest,
    FailRequest,
    HeartbeatAnswer,
    HeartbeatRequest,
    JobInfo,
    JobSpec,
    LogLine,
    ScheduleInfo,
    ScheduleSpec,
    WorkerInfo,
)

T = TypeVar("T")
JOBS = "/api/v1/training/jobs"


class TrainingApi:
    """Mixed into ``HubClient``; uses its transport."""

    if TYPE_CHECKING:

        def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response: ...

        def _typed(self, method: str, path: str, kind: type[T], **kwargs: Any) -> T: ...

        def _post_struct(self, path: str, body: msgspec.Struct, kind: type[T]) -> T: ...

        def download(
            self, path: str, dest: Path, *, max_bytes: int, json: Any = None
        ) -> httpx.Headers: ...

    # -- people --------------------------------------------------------------------------

    def submit_training(self, spec: JobSpec) -> JobInfo:
        return self._post_struct(JOBS, spec, JobInfo)

    def training_jobs(
        self, *, state: str | None = None, model: str | None = None, limit: int = 100
    ) -> list[JobInfo]:
        params: dict[str, Any] = {"limit": limit}
        params.update({k: v for k, v in (("state", state), ("model", model)) if v})
        return self._typed("GET", JOBS, list[JobInfo], params=params)

    def training_job(self, job_id: int) -> JobInfo:
        return self._typed("GET", f"{JOBS}/{job_id}", JobInfo)

    def wait_training(self, job_id: int, *, timeout: float, poll_s: float = 0.5) -> JobInfo:
        """Poll until the job has ended; the job as it ended."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.training_job(job_id)
            if job.state in TERMINAL_STATES:
                return job
            if time.monotonic() > deadline:
                raise HubError(
                    f"training job {job_id} is still {job.state} after {timeout:.0f} s "
                    f"({job.message})",
                    hint=f"follow it with 'appliance train logs {job_id}'",
                )
            time.sleep(poll_s)

    def training_logs(self, job_id: int, *, after: int = 0) -> list[LogLine]:
        return self._typed("GET", f"{JOBS}/{job_id}/logs", list[LogLine], params={"after": after})

    def cancel_training(self, job_id: int) -> JobInfo:
        return self._typed("POST", f"{JOBS}/{job_id}/cancel", JobInfo)

    def create_schedule(self, spec: ScheduleSpec) -> ScheduleInfo:
        return self._post_struct("/api/v1/training/schedules", spec, ScheduleInfo)

    def training_schedules(self) -> list[ScheduleInfo]:
        return self._typed("GET", "/api/v1/training/schedules", list[ScheduleInfo])

    def delete_schedule(self, name: str) -> None:
        self._request("DELETE", f"/api/v1/training/schedules/{name}")

    def training_workers(self) -> list[WorkerInfo]:
        return self._typed("GET", "/api/v1/training/workers", list[WorkerInfo])

    # -- workers -------------------------------------------------------------------------

    def claim_training(self, request: ClaimRequest) -> JobInfo | None:
        response = self._request(
            "POST",
            "/api/v1/training/claim",
            content=msgspec.json.encode(request),
            headers={"content-type": "application/json"},
        )
        if response.status_code == 204:
            return None
        return msgspec.json.decode(response.content, type=JobInfo)

    def training_heartbeat(self, job_id: int, beat: HeartbeatRequest) -> HeartbeatAnswer:
        return self._post_struct(f"{JOBS}/{job_id}/heartbeat", beat, HeartbeatAnswer)

    def training_dataset(self, job_id: int) -> tuple[bytes, list[SnapshotRef]]:
        """The job's training set as Parquet bytes, and the feature snapshots it read (for the
        worker account that holds the job's lease)."""
        response = self._request("POST", f"{JOBS}/{job_id}/dataset", timeout=600.0)
        header = response.headers.get("x-feature-snapshots", "[]")
        return response.content, msgspec.json.decode(header, type=list[SnapshotRef])

    def training_baseline(self, job_id: int, dest: Path, *, max_bytes: int) -> int | None:
        """Download the production version's bundle to ``dest``; its version, or None."""
        headers = self.download(f"{JOBS}/{job_id}/baseline", dest, max_bytes=max_bytes, json={})
        version = headers.get("x-bundle-version")
        if version is None:
            dest.unlink(missing_ok=True)
            return None
        return int(version)

    def training_result(
        self,
        job_id: int,
        metadata: dict[str, Any],
        *,
        onnx_bytes: bytes | None,
        reference_npy: bytes | None,
    ) -> JobInfo:
        # metadata travels as a file part, so the form is multipart even without a model
        files: dict[str, Any] = {
            "metadata": ("metadata.json", json.dumps(metadata).encode(), "application/json")
        }
        if onnx_bytes is not None:
            files["model"] = ("model.onnx", onnx_bytes, "application/octet-stream")
        if reference_npy is not None:
            files["reference"] = ("reference.npy", reference_npy, "application/octet-stream")
        return self._typed(
            "POST",
            f"{JOBS}/{job_id}/result",
            JobInfo,
            files=files,
            timeout=300.0,
        )

    def training_failed(self, job_id: int, request: FailRequest) -> JobInfo:
        return self._post_struct(f"{JOBS}/{job_id}/fail", request, JobInfo)
