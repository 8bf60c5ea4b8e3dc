"""Training over HTTP: jobs for people (``/api/v1/training``), the lease protocol for workers.

People submit, list, watch and cancel jobs and keep retraining schedules.
Workers (role ``worker``) claim a job, heartbeat, fetch its training set and
the production baseline, and report a result or a failure; every worker call
after the claim names the worker and is refused with 409 once its lease is
gone, which is the worker's signal to stop.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

import msgspec
import pyarrow.parquet as pq
from litestar import Controller, Request, delete, get, post
from litestar.params import Parameter
from litestar.response import File, Response

from appliance.errors import InvalidInputError
from appliance.wire.training import (
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
from hub.auth.guards import principal_of, requires
from hub.auth.roles import Permission as P
from hub.features.controllers import PARQUET_MEDIA_TYPE
from hub.multipart import Multipart, json_object, upload_bytes
from hub.pagination import After, Limit
from hub.registry.service import RegistryService
from hub.training.jobs import TrainingJobs
from hub.training.schedules import RetrainingSchedules


class ResultMetadata(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """The ``metadata`` part of a worker's result (the worker is its signed-in account)."""

    verdict: str
    """``passed`` or ``rejected`` (checked by the service)."""
    metrics: dict[str, float] = {}
    lineage: dict[str, Any] = {}


class TrainingController(Controller):
    path = "/api/v1/training"
    tags = ["training"]

    # -- people ------------------------------------------------------------------

    @post(
        "/jobs",
        operation_id="submitTrainingJob",
        guards=[requires(P.TRAINING_SUBMIT)],
        sync_to_thread=True,
    )
    def submit(
        self, data: JobSpec, training: TrainingJobs, request: Request[Any, Any, Any]
    ) -> JobInfo:
        """Queue a job; the views' versions are pinned now."""
        return training.submit(data, actor=principal_of(request).actor)

    @get(
        "/jobs",
        operation_id="listTrainingJobs",
        guards=[requires(P.TRAINING_READ)],
        sync_to_thread=True,
    )
    def list_jobs(
        self,
        training: TrainingJobs,
        limit: Limit,
        job_state: Annotated[str | None, Parameter(query="state")] = None,
        model: str | None = None,
        after: After = 0,
    ) -> list[JobInfo]:
        """Newest first (filter by ``state``, ``model``); page with ``after`` = the
        last id of the previous page."""
        return training.list_jobs(state=job_state, model=model, after=after, limit=limit)

    @get(
        "/jobs/{job_id:int}",
        operation_id="getTrainingJob",
        guards=[requires(P.TRAINING_READ, P.TRAINING_WORK)],
        sync_to_thread=True,
    )
    def one(self, job_id: int, training: TrainingJobs) -> JobInfo:
        return training.get(job_id)

    @get(
        "/jobs/{job_id:int}/logs",
        operation_id="getTrainingLogs",
        guards=[requires(P.TRAINING_READ)],
        sync_to_thread=True,
    )
    def logs(self, job_id: int, training: TrainingJobs, after: After = 0) -> list[LogLine]:
        """Log lines after sequence number ``after`` (follow a job by passing the last)."""
        return training.logs(job_id, after=after)

    @post(
        "/jobs/{job_id:int}/cancel",
        operation_id="cancelTrainingJob",
        guards=[requires(P.TRAINING_SUBMIT)],
        status_code=200,
        sync_to_thread=True,
    )
    def cancel(
        self, job_id: int, training: TrainingJobs, request: Request[Any, Any, Any]
    ) -> JobInfo:
        return training.cancel(job_id, actor=principal_of(request).actor)

    @post(
        "/schedules",
        operation_id="createTrainingSchedule",
        guards=[requires(P.TRAINING_SUBMIT)],
        sync_to_thread=True,
    )
    def schedule(
        self,
        data: ScheduleSpec,
        schedules: RetrainingSchedules,
        request: Request[Any, Any, Any],
    ) -> ScheduleInfo:
        """Retrain on a cron expression (UTC), on drift alerts for the model, or both."""
        return schedules.create(data, actor=principal_of(request).actor)

    @get(
        "/schedules",
        operation_id="listTrainingSchedules",
        guards=[requires(P.TRAINING_READ)],
        sync_to_thread=True,
    )
    def schedules_list(self, schedules: RetrainingSchedules) -> list[ScheduleInfo]:
        return schedules.list_all()

    @delete(
        "/schedules/{name:str}",
        operation_id="deleteTrainingSchedule",
        guards=[requires(P.TRAINING_SUBMIT)],
        sync_to_thread=True,
    )
    def unschedule(
        self, name: str, schedules: RetrainingSchedules, request: Request[Any, Any, Any]
    ) -> None:
        schedules.delete(name, actor=principal_of(request).actor)

    @get(
        "/workers",
        operation_id="listTrainingWorkers",
        guards=[requires(P.TRAINING_READ)],
        sync_to_thread=True,
    )
    def workers(self, training: TrainingJobs) -> list[WorkerInfo]:
        """Every worker seen, with its latest and recent GPU readings."""
        return training.workers.list_all()

    # -- workers -----------------------------------------------------------------

    @post(
        "/claim",
        operation_id="claimTrainingJob",
        guards=[requires(P.TRAINING_WORK)],
        status_code=200,
        sync_to_thread=True,
    )
    def claim(
        self, data: ClaimRequest, training: TrainingJobs, request: Request[Any, Any, Any]
    ) -> Response[Any]:
        """The oldest queued job the worker's zone may read, leased to it; 204 if none."""
        job = training.claim(data, principal_of(request))
        if job is None:
            return Response(None, status_code=204)
        return Response(job)

    @post(
        "/jobs/{job_id:int}/heartbeat",
        operation_id="trainingHeartbeat",
        guards=[requires(P.TRAINING_WORK)],
        status_code=200,
        sync_to_thread=True,
    )
    def heartbeat(
        self,
        job_id: int,
        data: HeartbeatRequest,
        training: TrainingJobs,
        request: Request[Any, Any, Any],
    ) -> HeartbeatAnswer:
        """Renews the lease; ``cancel: true`` tells the worker to stop now."""
        return training.heartbeat(job_id, data, principal_of(request))

    @post(
        "/jobs/{job_id:int}/dataset",
        operation_id="trainingDataset",
        guards=[requires(P.TRAINING_WORK)],
        status_code=200,
        sync_to_thread=True,
    )
    def dataset(
        self,
        job_id: int,
        training: TrainingJobs,
        request: Request[Any, Any, Any],
    ) -> Response[bytes]:
        """The job's point-in-time training set as Parquet, for the worker account that
        holds its lease; ``X-Feature-Snapshots`` lists the snapshots read (JSON)."""
        result = training.dataset(job_id, principal_of(request))
        buffer = io.BytesIO()
        pq.write_table(result.table, buffer, compression="zstd")
        return Response(
            buffer.getvalue(),
            media_type=PARQUET_MEDIA_TYPE,
            headers={"X-Feature-Snapshots": msgspec.json.encode(result.snapshots).decode()},
        )

    @post(
        "/jobs/{job_id:int}/baseline",
        operation_id="trainingBaseline",
        guards=[requires(P.TRAINING_WORK)],
        status_code=200,
        sync_to_thread=True,
    )
    def baseline(
        self,
        job_id: int,
        training: TrainingJobs,
        registry: RegistryService,
        request: Request[Any, Any, Any],
    ) -> Response[Any]:
        """The signed bundle of the model's production version, to compare against on
        the same held-out split; 204 when the model has none."""
        job = training.get_leased(job_id, principal_of(request).name)
        current = registry.production_version(job.model)
        if current is None:
            return Response(None, status_code=204)
        path, info = registry.bundle_file(job.model, current)
        return File(
            path=path,
            filename=f"{job.model}-{current}.bundle.tar",
            media_type="application/x-tar",
            headers={"X-Bundle-Version": str(current), "X-Bundle-SHA256": info.bundle_sha256},
        )

    @post(
        "/jobs/{job_id:int}/fail",
        operation_id="trainingFailed",
        guards=[requires(P.TRAINING_WORK)],
        status_code=200,
        sync_to_thread=True,
    )
    def fail(
        self,
        job_id: int,
        data: FailRequest,
        training: TrainingJobs,
        request: Request[Any, Any, Any],
    ) -> JobInfo:
        """The run failed, or stopped because the job was cancelled."""
        return training.fail(job_id, data, principal_of(request))


class TrainingUploadController(Controller):
    """A worker's result with its trained model: mounted with the site's upload limit
    (``APPLIANCE_MAX_UPLOAD_MB``), where every other endpoint takes JSON-sized bodies."""

    path = "/api/v1/training"
    tags = ["training"]

    @post(
        "/jobs/{job_id:int}/result",
        operation_id="trainingResult",
        guards=[requires(P.TRAINING_WORK)],
        status_code=200,
        sync_to_thread=True,
    )
    def result(
        self,
        job_id: int,
        data: Multipart,
        training: TrainingJobs,
        request: Request[Any, Any, Any],
    ) -> JobInfo:
        """Multipart: ``metadata`` (JSON: verdict ``passed``/``rejected``, metrics,
        lineage), and for a passed job ``model`` (ONNX) and optional ``reference`` (.npy
        sample of training inputs, for drift). Only the worker account holding the lease
        may report it."""
        try:
            meta = msgspec.convert(json_object(data, "metadata"), ResultMetadata)
        except msgspec.ValidationError as exc:
            raise InvalidInputError(f"metadata: {exc}") from exc
        return training.complete(
            job_id,
            principal_of(request),
            onnx_bytes=upload_bytes(data, "model", required=False),
            reference_npy=upload_bytes(data, "reference", required=False),
            metrics=meta.metrics,
            lineage=meta.lineage,
            verdict=meta.verdict,
        )
